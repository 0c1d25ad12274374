"""The only code that changes a credit balance. Every change is a conditional update of the balance and a
ledger entry, in one transaction."""

from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.models import EntryKind, LedgerEntry, User


class InsufficientCredits(Exception):
    def __init__(self, *, needed: int, balance: int):
        self.needed = needed
        self.balance = balance
        super().__init__(f"This needs {needed:,} credits and the balance is {balance:,}.")


def _apply(
    *, user_id: int, amount: int, kind: str, actor=None, reason: str = "", reference: str = ""
) -> LedgerEntry:
    users = User.objects.filter(pk=user_id)
    if amount < 0:
        # Conditional: only succeeds while the balance covers it. The row lock it takes serialises spenders.
        users = users.filter(credits__gte=-amount)
    if not users.update(credits=F("credits") + amount):
        balance = User.objects.values_list("credits", flat=True).get(pk=user_id)
        raise InsufficientCredits(needed=-amount, balance=balance)
    balance_after = User.objects.values_list("credits", flat=True).get(pk=user_id)
    return LedgerEntry.objects.create(
        user_id=user_id,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        actor=actor,
        reason=reason,
        reference=reference,
    )


@transaction.atomic
def spend(*, user, amount: int, reference: str, reason: str = "") -> LedgerEntry:
    """Take `amount` credits, or raise InsufficientCredits and take nothing. Call inside the transaction
    that creates what is paid for."""
    if amount <= 0:
        raise ValueError("A spend is a positive amount.")
    entry = _apply(user_id=user.pk, amount=-amount, kind=EntryKind.SPEND, reason=reason, reference=reference)
    _publish_balance_on_commit(user.pk)
    return entry


def refund(*, user_id: int, amount: int, reference: str, reason: str = "") -> LedgerEntry | None:
    """Give back `amount` credits for `reference`, once. A second refund of the same reference does nothing
    and returns None (the unique constraint decides, so concurrent refunds are safe)."""
    if amount <= 0:
        return None
    try:
        with transaction.atomic():
            entry = _apply(
                user_id=user_id, amount=amount, kind=EntryKind.REFUND, reason=reason, reference=reference
            )
    except IntegrityError:
        return None
    _publish_balance_on_commit(user_id)
    return entry


@transaction.atomic
def adjust(*, user, amount: int, kind: str, actor=None, reason: str = "", reference: str = "") -> LedgerEntry:
    """Grant (positive) or deduct (negative) credits, for bonuses, admin grants and adjustments."""
    if amount == 0:
        raise ValueError("An adjustment of zero credits changes nothing.")
    entry = _apply(user_id=user.pk, amount=amount, kind=kind, actor=actor, reason=reason, reference=reference)
    _publish_balance_on_commit(user.pk)
    return entry


def _publish_balance_on_commit(user_id: int) -> None:
    from accounts.events import publish_balance_changed

    transaction.on_commit(lambda: publish_balance_changed(user_id))
