from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Membership, User


class Command(BaseCommand):
    help = "Create an API key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--workspace", help="Workspace slug (default: the user's personal workspace).")
        parser.add_argument("--name", default="command line", help="What the key is for.")

    def handle(self, *args: Any, username: str, workspace: str | None, name: str, **options: Any) -> None:
        from accounts.services import api_key_create, personal_workspace

        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if workspace:
            membership = (
                Membership.objects.select_related("workspace")
                .filter(user=user, workspace__slug=workspace)
                .first()
            )
            if membership is None:
                raise CommandError(f"{username} is not a member of a workspace {workspace!r}.")
            target = membership.workspace
        else:
            target = personal_workspace(user)
        _, secret = api_key_create(user=user, workspace=target, name=name)
        self.stdout.write(secret)
