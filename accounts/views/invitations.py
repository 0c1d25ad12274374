"""The page an invitation link opens: see who invites you where, and accept."""

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.middleware import SESSION_KEY
from accounts.models import Invitation
from accounts.services import WorkspaceError, invitation_accept, invitation_for_token


def _get_pending_invitation(token: str) -> Invitation | None:
    invitation = invitation_for_token(token)
    if invitation is None or not invitation.is_pending:
        return None
    return invitation


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = _get_pending_invitation(token)
    if invitation is None:
        return render(request, "accounts/invitation_invalid.html", status=404)
    if not request.user.is_authenticated:
        messages.info(
            request, f"Log in, or sign up, to join {invitation.workspace}. The invitation waits for you."
        )
        return redirect_to_login(request.get_full_path())
    error = None
    if request.method == "POST":
        try:
            membership = invitation_accept(invitation=invitation, user=request.user)
        except WorkspaceError as failure:
            error = str(failure)
        else:
            request.session[SESSION_KEY] = membership.workspace_id
            messages.success(
                request,
                f"Welcome to {invitation.workspace}. You are {membership.get_role_display().lower()}.",
            )
            return redirect("studio:home")
    return render(
        request,
        "accounts/invitation.html",
        {"invitation": invitation, "error": error},
        status=400 if error else 200,
    )
