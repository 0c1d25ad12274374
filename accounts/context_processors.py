from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import Membership


def studio_header(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return {}
    return {
        "current_membership": getattr(request, "membership", None),
        # For the header's workspace switcher; evaluated only when a page renders the header.
        "header_memberships": Membership.objects.filter(user=user)
        .select_related("workspace")
        .order_by("-workspace__is_personal", "workspace__name"),
    }


def signup(request: HttpRequest) -> dict[str, Any]:
    """What the sign-up page promises: the bonus, and whether it waits for a confirmed address."""
    return {
        "bonus": settings.SIGNUP_BONUS_CREDITS,
        "verification_mandatory": settings.ACCOUNT_EMAIL_VERIFICATION == "mandatory",
    }
