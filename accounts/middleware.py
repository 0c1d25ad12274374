from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from accounts.models import Membership
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


class CurrentWorkspaceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Declared for the type checker on accounts.http.AuthenticatedRequest.
        request.membership = SimpleLazyObject(lambda: current_membership(request))  # type: ignore[attr-defined]
        return self.get_response(request)
