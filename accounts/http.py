"""Small helpers for views of every app."""

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest, default: str = "studio:home") -> str:
    """Where to go after a form: the `next` parameter when it points into this site, else `default` (a URL
    or a URL name, as `redirect` takes either)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
