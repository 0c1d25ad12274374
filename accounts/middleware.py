from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.functional import SimpleLazyObject

from accounts.http import SyncAndAsyncMiddleware
from accounts.models import Membership, User
from accounts.services import personal_workspace

SESSION_KEY = "workspace_id"


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership of the workspace the user works in now: the one chosen in the session, else own."""
    user = request.user
    if not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("workspace").filter(user=user)
    chosen = request.session.get(SESSION_KEY)
    if chosen and (membership := memberships.filter(workspace_id=chosen).first()):
        return membership
    workspace = personal_workspace(user)
    return memberships.get(workspace=workspace)


class CurrentWorkspaceMiddleware(SyncAndAsyncMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        # Declared for the type checker on accounts.http.AuthenticatedRequest. Lazy: read on first use.
        request.membership = SimpleLazyObject(lambda: current_membership(request))  # type: ignore[attr-defined]
        return self.get_response(request)  # the response, or the coroutine of the async chain


def has_second_factor(user: User) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


class TwoFactorRequiredMiddleware(SyncAndAsyncMiddleware):
    """Pages of a workspace whose owners require two-factor authentication, and the admin when
    ADMIN_REQUIRE_TWO_FACTOR is set, send a signed-in user without a second factor to set one up first.
    The account pages (allauth's, under /accounts/) stay open, so the way out is always reachable."""

    OPEN_PREFIXES = ("/accounts/", "/static/", "/healthz", "/readyz", "/metrics", "/v1/", "/api/", "/ws/")

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        if refused := self._refusal(request):
            return refused
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        # The open paths (the API above all) need no session, user or database: no thread for them.
        if not request.path.startswith(self.OPEN_PREFIXES) and (
            refused := await sync_to_async(self._refusal)(request)
        ):
            return refused
        return await self.get_response(request)

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        if self._needs_second_factor(request):
            messages.warning(request, "Set up two-factor authentication to continue: this is required here.")
            return redirect("mfa_activate_totp")
        return None

    def _needs_second_factor(self, request: HttpRequest) -> bool:
        if request.path.startswith(self.OPEN_PREFIXES):  # first: an API call then loads no session or user
            return False
        user = request.user
        if not user.is_authenticated:
            return False
        if request.path.startswith("/admin/"):
            required = settings.ADMIN_REQUIRE_TWO_FACTOR and user.is_staff
        else:
            membership = getattr(request, "membership", None)
            required = bool(membership and membership.workspace.require_two_factor)
        return required and not has_second_factor(user)
