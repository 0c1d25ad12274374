"""Workspaces and their members: create, switch, invite, change roles, remove, leave.

A stranger gets 404 for every workspace URL; a member without the role for an action gets 403.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import get_membership_for_user, get_owner_membership_for_user
from accounts.forms import InvitationForm, RoleForm, WorkspaceForm
from accounts.http import AuthenticatedRequest, safe_next
from accounts.middleware import SESSION_KEY
from accounts.models import AuditAction, AuditEvent, Invitation, Membership
from accounts.services import (
    WorkspaceError,
    invitation_create,
    invitation_revoke,
    membership_change_role,
    membership_remove,
    workspace_create,
    workspace_leave,
    workspace_require_two_factor,
)


def _members_context(membership: Membership, invitation_form: InvitationForm | None = None) -> dict:
    workspace = membership.workspace
    context = {
        "membership": membership,
        "workspace": workspace,
        "members": workspace.memberships.select_related("user").order_by("user__username"),
        "role_choices": Membership._meta.get_field("role").choices,
    }
    if membership.is_owner and not workspace.is_personal:
        context["invitation_form"] = invitation_form or InvitationForm()
        context["invitation_valid_days"] = settings.INVITATION_VALID_DAYS
        context["invitations"] = (
            Invitation.objects.pending().filter(workspace=workspace).select_related("invited_by")
        )
    return context


def _switch_to(request: AuthenticatedRequest, workspace_id: int) -> None:
    request.session[SESSION_KEY] = workspace_id


@login_required
@require_http_methods(["GET"])
def workspace_list(request: AuthenticatedRequest) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("workspace")
        .annotate(member_count=Count("workspace__memberships"))
        .order_by("-workspace__is_personal", "workspace__name")
    )
    return render(request, "accounts/workspaces.html", {"memberships": memberships})


@login_required
@require_http_methods(["GET", "POST"])
def workspace_new(request: AuthenticatedRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership = workspace_create(user=request.user, name=form.cleaned_data["name"])
        _switch_to(request, membership.workspace_id)
        messages.success(request, f"{membership.workspace} is ready. Invite your team.")
        return redirect("accounts:workspace-members", membership.workspace.slug)
    return render(request, "accounts/workspace_new.html", {"form": form})


@login_required
@require_POST
def workspace_switch(request: AuthenticatedRequest) -> HttpResponse:
    workspace_id = request.POST.get("workspace", "")
    membership = get_object_or_404(
        Membership.objects.select_related("workspace"),
        user=request.user,
        workspace_id=workspace_id if workspace_id.isdigit() else None,
    )
    _switch_to(request, membership.workspace_id)
    return redirect(safe_next(request))


@login_required
@require_http_methods(["GET"])
def workspace_members(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    membership = get_membership_for_user(request, slug)
    return render(request, "accounts/members.html", _members_context(membership))


@login_required
@require_POST
def workspace_two_factor(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    membership = get_owner_membership_for_user(request, slug)
    required = request.POST.get("required") == "1"
    try:
        workspace_require_two_factor(workspace=membership.workspace, actor=request.user, required=required)
    except WorkspaceError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            "Members now need two-factor authentication to work here."
            if required
            else "Two-factor authentication is no longer required here.",
        )
    return redirect("accounts:workspace-members", slug)


AUDIT_PAGE_SIZE = 50


@login_required
@require_http_methods(["GET"])
def workspace_audit(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """The workspace's security and money events, newest first, for its owners; filtered by action and by
    who did it."""
    membership = get_owner_membership_for_user(request, slug)
    events = AuditEvent.objects.filter(workspace=membership.workspace)
    action = request.GET.get("action", "")
    if action in AuditAction.values:
        events = events.filter(action=action)
    actor = request.GET.get("actor", "").strip()[:150]
    if actor:
        events = events.filter(actor_label__icontains=actor)
    page = Paginator(events.select_related("actor"), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "membership": membership,
        "workspace": membership.workspace,
        "page": page,
        "actions": AuditAction.choices,
        "action": action,
        "actor": actor,
    }
    return render(request, "accounts/audit.html", context)


@login_required
@require_POST
def workspace_invite(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    membership = get_owner_membership_for_user(request, slug)
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation = invitation_create(
                workspace=membership.workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
        except WorkspaceError as error:
            form.add_error("email", str(error))
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("accounts:workspace-members", slug)
    return render(request, "accounts/members.html", _members_context(membership, form), status=400)


@login_required
@require_POST
def invitation_cancel(request: AuthenticatedRequest, slug: str, invitation_id: int) -> HttpResponse:
    membership = get_owner_membership_for_user(request, slug)
    invitation = get_object_or_404(Invitation, pk=invitation_id, workspace=membership.workspace)
    invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"The invitation to {invitation.email} no longer works.")
    return redirect("accounts:workspace-members", slug)


@login_required
@require_POST
def member_role(request: AuthenticatedRequest, slug: str, membership_id: int) -> HttpResponse:
    membership = get_owner_membership_for_user(request, slug)
    member = get_object_or_404(Membership, pk=membership_id, workspace=membership.workspace)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, editor or viewer.")
        return redirect("accounts:workspace-members", slug)
    try:
        member = membership_change_role(membership=member, role=form.cleaned_data["role"], actor=request.user)
    except WorkspaceError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{member.user} is now {member.get_role_display().lower()}.")
    return redirect("accounts:workspace-members", slug)


@login_required
@require_POST
def member_remove(request: AuthenticatedRequest, slug: str, membership_id: int) -> HttpResponse:
    membership = get_owner_membership_for_user(request, slug)
    member = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, workspace=membership.workspace
    )
    try:
        membership_remove(membership=member, actor=request.user)
    except WorkspaceError as error:
        messages.error(request, str(error))
        return redirect("accounts:workspace-members", slug)
    if member.user_id == request.user.pk:
        messages.success(request, f"You left {membership.workspace}.")
        return redirect("accounts:workspace-list")
    messages.success(request, f"{member.user} is no longer a member of {membership.workspace}.")
    return redirect("accounts:workspace-members", slug)


@login_required
@require_POST
def workspace_leave_view(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    membership = get_membership_for_user(request, slug)
    try:
        workspace_leave(membership=membership)
    except WorkspaceError as error:
        messages.error(request, str(error))
        return redirect("accounts:workspace-members", slug)
    if request.session.get(SESSION_KEY) == membership.workspace_id:
        del request.session[SESSION_KEY]
    messages.success(request, f"You left {membership.workspace}.")
    return redirect("accounts:workspace-list")
