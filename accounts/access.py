"""How a view reaches a workspace: through the user's membership of it. A stranger gets 404 (the workspace
might as well not exist); a member without the role for an action gets 403."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from accounts.models import Membership


def get_membership_for_user(request: HttpRequest, slug: str) -> Membership:
    """The user's membership of the workspace `slug`; 404 for anyone who is not a member."""
    return get_object_or_404(
        Membership.objects.select_related("workspace", "user"), user=request.user, workspace__slug=slug
    )


def get_writer_membership_for_user(request: HttpRequest, slug: str) -> Membership:
    membership = get_membership_for_user(request, slug)
    if not membership.can_write:
        raise PermissionDenied("Viewers cannot change this workspace.")
    return membership


def get_owner_membership_for_user(request: HttpRequest, slug: str) -> Membership:
    membership = get_membership_for_user(request, slug)
    if not membership.is_owner:
        raise PermissionDenied("Only an owner can manage the members of this workspace.")
    return membership
