"""Work on identity and money that spans models: signup, workspaces, members, invitations, credits."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import audit, ledger
from accounts.models import (
    ApiKey,
    AuditAction,
    EntryKind,
    Invitation,
    LedgerEntry,
    Membership,
    Role,
    User,
    Workspace,
)

# Expired invitations are kept this long after expiry (so "this link has expired" stays explainable), then
# deleted by the beat task.
EXPIRED_INVITATION_RETENTION = timedelta(days=30)


class WorkspaceError(Exception):
    """A membership change that would break a rule; the message is shown to the person as is."""


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> User:
    """Create a user with a personal workspace, a verified address and the sign-up bonus: for accounts made
    by the studio's own tools and tests; people sign up through allauth (accounts.adapter)."""
    from allauth.account.models import EmailAddress

    from accounts.bonus import grant_signup_bonus

    user = User.objects.create_user(username=username, email=email, password=password)
    personal_workspace(user)
    if email:
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    grant_signup_bonus(user, email)
    user.refresh_from_db(fields=["credits"])
    audit.record(AuditAction.SIGNUP, actor=user, target=user.email)
    return user


def personal_workspace(user: User) -> Workspace:
    """The user's own workspace, made on first need (users created by createsuperuser have none yet)."""
    membership = (
        Membership.objects.select_related("workspace").filter(user=user, workspace__is_personal=True).first()
    )
    if membership:
        return membership.workspace
    with transaction.atomic():
        workspace = Workspace.objects.create(
            name=f"{user.username}'s studio",
            slug=Workspace.unique_slug(user.username),
            is_personal=True,
            created_by=user,
        )
        Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    return workspace


# Workspaces and members


@transaction.atomic
def workspace_create(*, user: User, name: str) -> Membership:
    """A team workspace with `user` as its owner."""
    workspace = Workspace.objects.create(name=name, slug=Workspace.unique_slug(name), created_by=user)
    audit.record(AuditAction.WORKSPACE_CREATED, actor=user, workspace=workspace, target=workspace.name)
    return Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)


def _lock_workspace(workspace_id: int) -> Workspace:
    # Every change of roles or members in a workspace takes this lock first, so two owners demoting each
    # other at the same moment cannot both pass the "one owner remains" check.
    return Workspace.objects.select_for_update().get(pk=workspace_id)


def _require_owner(workspace: Workspace, actor: User) -> None:
    if not Membership.objects.filter(workspace=workspace, user=actor, role=Role.OWNER).exists():
        raise PermissionDenied("Only an owner can manage the members of this workspace.")


def _other_owners(membership: Membership) -> int:
    return (
        Membership.objects.filter(workspace_id=membership.workspace_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .count()
    )


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor: User) -> Membership:
    """An owner gives a member another role. The last owner keeps theirs."""
    workspace = _lock_workspace(membership.workspace_id)
    _require_owner(workspace, actor)
    membership = Membership.objects.get(pk=membership.pk)
    if role not in Role.values:
        raise WorkspaceError("Choose owner, editor or viewer.")
    if membership.role == Role.OWNER and role != Role.OWNER and not _other_owners(membership):
        raise WorkspaceError(
            f"{membership.user} is the last owner of {workspace}. Make someone else an owner first."
        )
    previous, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    audit.record(
        AuditAction.ROLE_CHANGED,
        actor=actor,
        workspace=workspace,
        target=membership.user.get_username(),
        previous=previous,
        role=role,
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    """An owner removes a member (or themselves, which is leaving)."""
    workspace = _lock_workspace(membership.workspace_id)
    if membership.user_id != actor.pk:
        _require_owner(workspace, actor)
    membership = Membership.objects.select_related("user").get(pk=membership.pk)
    if workspace.is_personal:
        raise WorkspaceError("A personal workspace always keeps its owner.")
    if membership.role == Role.OWNER and not _other_owners(membership):
        raise WorkspaceError(
            f"{membership.user} is the last owner of {workspace}. Make someone else an owner first."
        )
    membership.delete()
    audit.record(
        AuditAction.MEMBER_REMOVED,
        actor=actor,
        workspace=workspace,
        target=membership.user.get_username(),
        role=membership.role,
        left=membership.user_id == actor.pk,
    )


def workspace_leave(*, membership: Membership) -> None:
    membership_remove(membership=membership, actor=membership.user)


# Invitations


def invitation_create(*, workspace: Workspace, email: str, role: str, invited_by: User) -> Invitation:
    """Invite `email` into a team workspace and send the link. An earlier pending invitation to the same
    address is replaced, so only the newest link works."""
    email = email.strip().lower()
    with transaction.atomic():
        workspace = _lock_workspace(workspace.pk)
        _require_owner(workspace, invited_by)
        if workspace.is_personal:
            raise WorkspaceError(
                "A personal workspace is yours alone. Create a team workspace to invite people."
            )
        if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
            raise WorkspaceError(f"{email} is already a member of {workspace}.")
        Invitation.objects.pending().filter(workspace=workspace, email__iexact=email).delete()
        invitation, token = Invitation.new(workspace=workspace, email=email, role=role, invited_by=invited_by)
        invitation.save()
        audit.record(
            AuditAction.INVITATION_CREATED, actor=invited_by, workspace=workspace, target=email, role=role
        )
        transaction.on_commit(lambda: _send_invitation(invitation, token))
    return invitation


def invitation_url(token: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("accounts:invitation", args=[token])


def _send_invitation(invitation: Invitation, token: str) -> None:
    context = {
        "invitation": invitation,
        "url": invitation_url(token),
        "inviter": invitation.invited_by,
        "valid_days": settings.INVITATION_VALID_DAYS,
    }
    from accounts.tasks import send_email

    send_email.delay(
        subject=f"You are invited to {invitation.workspace} on Studio",
        body=render_to_string("accounts/invitation_email.txt", context),
        from_email=None,
        to=[invitation.email],
    )


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a link points to, whatever its state, or None for a made-up token."""
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=Invitation.hash_token(token))
        .first()
    )


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Make `user` a member with the invited role and use the invitation up.

    The link is the credential: any logged-in account that holds it may accept, whatever address it was
    sent to (emails are not verified at signup, so matching them would only look like security). An
    existing member keeps their role and leaves the invitation unused for the person it was meant for.
    """
    if existing := Membership.objects.filter(workspace_id=invitation.workspace_id, user=user).first():
        raise WorkspaceError(
            f"You are already a member of {invitation.workspace} ({existing.get_role_display()})."
        )
    now = timezone.now()
    # Conditional, so two clicks (or two people) racing on one link: only one of them gets in.
    used = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, expires_at__gt=now).update(
        accepted_at=now, accepted_by=user
    )
    if not used:
        raise WorkspaceError("This invitation has expired or was already used. Ask for a new one.")
    audit.record(
        AuditAction.INVITATION_ACCEPTED,
        actor=user,
        workspace=invitation.workspace,
        target=invitation.email,
        role=invitation.role,
    )
    return Membership.objects.create(workspace_id=invitation.workspace_id, user=user, role=invitation.role)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> None:
    _require_owner(invitation.workspace, actor)
    revoked, _ = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).delete()
    if revoked:
        audit.record(
            AuditAction.INVITATION_REVOKED,
            actor=actor,
            workspace=invitation.workspace,
            target=invitation.email,
        )


def invitations_purge_expired() -> int:
    """Delete invitations that were never used and expired a while ago."""
    cutoff = timezone.now() - EXPIRED_INVITATION_RETENTION
    deleted, _ = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lt=cutoff).delete()
    return deleted


# Credits


def credits_grant_or_deduct(
    *, user: User, amount: int, reason: str, actor: User | None = None
) -> LedgerEntry:
    """An admin's change of a balance: a grant when positive, an adjustment when negative. Raises
    ledger.InsufficientCredits, changing nothing, when a deduction is more than the balance."""
    if not reason.strip():
        raise ValueError("Say why the balance changes.")
    kind = EntryKind.GRANT if amount > 0 else EntryKind.ADJUSTMENT
    with transaction.atomic():
        entry = ledger.adjust(user=user, amount=amount, kind=kind, actor=actor, reason=reason.strip())
        audit.record(
            AuditAction.CREDITS_CHANGED,
            actor=actor,
            target=user.get_username(),
            amount=amount,
            balance_after=entry.balance_after,
            reason=reason.strip()[:200],
        )
    return entry


def workspace_require_two_factor(*, workspace: Workspace, actor: User, required: bool) -> None:
    """An owner decides whether members need a second factor to work in a team workspace."""
    with transaction.atomic():
        workspace = _lock_workspace(workspace.pk)
        _require_owner(workspace, actor)
        if workspace.is_personal:
            raise WorkspaceError("A personal workspace follows your own account's settings.")
        Workspace.objects.filter(pk=workspace.pk).update(require_two_factor=required)
        audit.record(AuditAction.TWO_FACTOR_REQUIRED, actor=actor, workspace=workspace, required=required)


# API keys


def api_key_create(*, user: User, workspace: Workspace, name: str) -> tuple[ApiKey, str]:
    """A new key and its secret (shown once; only its hash is kept)."""
    key, secret = ApiKey.issue(user=user, workspace=workspace, name=name)
    audit.record(AuditAction.API_KEY_CREATED, actor=user, workspace=workspace, target=key.prefix, name=name)
    return key, secret


def api_key_revoke(*, key: ApiKey, actor: User | None) -> None:
    was_active = key.is_active
    key.revoke(by=actor)
    if was_active:
        audit.record(AuditAction.API_KEY_REVOKED, actor=actor, workspace=key.workspace, target=key.prefix)


def api_key_rotate_webhook_secret(*, key: ApiKey, actor: User) -> str:
    secret = key.rotate_webhook_secret()
    audit.record(AuditAction.WEBHOOK_SECRET_ROTATED, actor=actor, workspace=key.workspace, target=key.prefix)
    return secret
