def studio_header(request) -> dict:
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return {}
    return {"current_membership": request.membership}
