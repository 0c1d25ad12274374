"""The only code that changes a credit balance. Every change is a conditional update of the balance and a
ledger entry, in one transaction.

Why this holds under concurrency (reviewed for PostgreSQL's READ COMMITTED and SQLite's single writer):
- The UPDATE of the user's row takes its row lock until commit, so changes of one balance run one at a time,
  and the balance read back for `balance_after` is this transaction's own.
- A spend's `credits >= amount` condition is re-checked by PostgreSQL on the latest committed row after
  waiting for the lock, so two spenders can never both pass on the same credits; the CHECK constraint on
  the balance is the last line should any code path forget the condition.
- Spends and refunds are unique per (kind, reference): a second refund of a generation fails on insert, and
  its savepoint rolls back the balance change that came with it.
- Every writer locks in the same order (generation row, then user row), so they cannot deadlock.
"""

from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.metrics import CREDITS
from accounts.models import EntryKind, LedgerEntry, User

ADJUSTMENT_KINDS = (EntryKind.BONUS, EntryKind.GRANT, EntryKind.ADJUSTMENT)


class InsufficientCredits(Exception):
    def __init__(self, *, needed: int, balance: int):
        self.needed = needed
        self.balance = balance
        super().__init__(f"This needs {needed:,} credits and the balance is {balance:,}.")


def _apply(
    *, user_id: int, amount: int, kind: str, actor: User | None = None, reason: str = "", reference: str = ""
) -> LedgerEntry:
    users = User.objects.filter(pk=user_id)
    if amount < 0:
        # Conditional: only succeeds while the balance covers it. The row lock it takes serialises spenders.
        users = users.filter(credits__gte=-amount)
    if not users.update(credits=F("credits") + amount):
        balance = User.objects.values_list("credits", flat=True).get(pk=user_id)
        raise InsufficientCredits(needed=-amount, balance=balance)
    balance_after = User.objects.values_list("credits", flat=True).get(pk=user_id)
    # Counted once the entry is kept: a spend rolled back with its generation moved nothing.
    transaction.on_commit(lambda: CREDITS.labels(kind).inc(abs(amount)))
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
def spend(*, user: User, amount: int, reference: str, reason: str = "") -> LedgerEntry:
    """Take `amount` credits, or raise InsufficientCredits and take nothing. Call inside the transaction
    that creates what is paid for."""
    if amount <= 0:
        raise ValueError("A spend is a positive amount.")
    entry = _apply(user_id=user.pk, amount=-amount, kind=EntryKind.SPEND, reason=reason, reference=reference)
    _publish_balance_on_commit(user.pk)
    return entry


def refund(
    *, user_id: int, amount: int, reference: str, reason: str = "", actor: User | None = None
) -> LedgerEntry | None:
    """Give back `amount` credits for `reference`, once. A second refund of the same reference does nothing
    and returns None (the unique constraint decides, so concurrent refunds are safe)."""
    if amount <= 0:
        return None
    try:
        with transaction.atomic():
            entry = _apply(
                user_id=user_id,
                amount=amount,
                kind=EntryKind.REFUND,
                actor=actor,
                reason=reason,
                reference=reference,
            )
    except IntegrityError:
        return None
    _publish_balance_on_commit(user_id)
    return entry


@transaction.atomic
def adjust(
    *, user: User, amount: int, kind: str, actor: User | None = None, reason: str = "", reference: str = ""
) -> LedgerEntry:
    """Grant (positive) or deduct (negative) credits, for bonuses, admin grants and adjustments."""
    if kind not in ADJUSTMENT_KINDS:
        # Spends and refunds carry their uniqueness guarantee only through spend() and refund().
        raise ValueError(f"Use spend() or refund() for {kind!r} entries.")
    if amount == 0:
        raise ValueError("An adjustment of zero credits changes nothing.")
    entry = _apply(user_id=user.pk, amount=amount, kind=kind, actor=actor, reason=reason, reference=reference)
    _publish_balance_on_commit(user.pk)
    return entry


def _publish_balance_on_commit(user_id: int) -> None:
    from accounts.events import publish_balance_changed

    transaction.on_commit(lambda: publish_balance_changed(user_id))
