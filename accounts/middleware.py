from django.utils.functional import SimpleLazyObject

from accounts.models import Membership
from accounts.services import personal_workspace

SESSION_KEY = "workspace_id"


def current_membership(request) -> Membership | None:
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
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = SimpleLazyObject(lambda: current_membership(request))
        return self.get_response(request)
