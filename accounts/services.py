from django.conf import settings
from django.db import transaction

from accounts import ledger
from accounts.models import EntryKind, Membership, Role, User, Workspace


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> User:
    """Create a user with a personal workspace and the signup bonus."""
    user = User.objects.create_user(username=username, email=email, password=password)
    personal_workspace(user)
    if settings.SIGNUP_BONUS_CREDITS > 0:
        ledger.adjust(
            user=user, amount=settings.SIGNUP_BONUS_CREDITS, kind=EntryKind.BONUS, reason="Welcome to Studio"
        )
    user.refresh_from_db(fields=["credits"])
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
