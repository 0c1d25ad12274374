"""Small helpers for views of every app."""

from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from accounts.models import Membership, User


def safe_next(request: HttpRequest, default: str = "studio:home") -> str:
    """Where to go after a form: the `next` parameter when it points into this site, else `default` (a URL
    or a URL name, as `redirect` takes either)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


class AuthenticatedRequest(HttpRequest):
    """The request a view behind `login_required` gets: a signed-in user, the membership of the workspace
    they work in now (CurrentWorkspaceMiddleware), and django-htmx's details. For type checking only."""

    user: "User"
    membership: "Membership"
    htmx: HtmxDetails


class SyncAndAsyncMiddleware:
    """A middleware Django runs in whichever mode the chain around it is (`is_async` says which): a sync-only
    middleware in an ASGI chain costs every request two thread hops (to a thread for it, back to the loop
    for the rest)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # type: ignore[type-var]  # as Django documents, on the instance
