"""Grant (or, with a negative amount, deduct) credits from the shell, as the admin form does."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.ledger import InsufficientCredits
from accounts.models import User
from accounts.services import credits_grant_or_deduct


class Command(BaseCommand):
    help = "Grant credits to a user, or deduct them with a negative AMOUNT. Writes a ledger entry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("amount", type=int, help="Credits to add; negative to deduct.")
        parser.add_argument("--reason", required=True, help="Why; kept in the ledger.")
        parser.add_argument("--actor", help="Username of the person doing this, recorded as the actor.")

    def handle(
        self, *args: Any, username: str, amount: int, reason: str, actor: str | None, **options: Any
    ) -> None:
        user = self._user(username)
        actor_user = self._user(actor) if actor else None
        if amount == 0:
            raise CommandError("AMOUNT must not be zero.")
        if not reason.strip():
            raise CommandError("--reason must say why.")
        try:
            entry = credits_grant_or_deduct(user=user, amount=amount, reason=reason, actor=actor_user)
        except InsufficientCredits as error:
            raise CommandError(f"Not deducted: {user} has {error.balance:,} credits.") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"{entry.get_kind_display()} of {amount:+,} credits: {user} now has {entry.balance_after:,}."
            )
        )

    def _user(self, username: str) -> User:
        try:
            return User.objects.get(username=username)
        except User.DoesNotExist as error:
            raise CommandError(f"No user is called {username!r}.") from error
