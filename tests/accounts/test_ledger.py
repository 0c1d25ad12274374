import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from accounts import ledger
from accounts.models import EntryKind, LedgerEntry, User


def ledger_sum(user) -> int:
    return LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or 0


def test_a_new_user_gets_the_signup_bonus_as_a_ledger_entry(alice):
    assert alice.credits == 1000
    entry = LedgerEntry.objects.get(user=alice)
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.BONUS, 1000, 1000)


def test_a_spend_takes_credits_and_records_the_balance_after(alice):
    entry = ledger.spend(user=alice, amount=300, reference="generation:one")
    alice.refresh_from_db()
    assert alice.credits == 700
    assert (entry.amount, entry.balance_after) == (-300, 700)
    assert ledger_sum(alice) == alice.credits


def test_a_spend_past_the_balance_takes_nothing(alice):
    with pytest.raises(ledger.InsufficientCredits) as raised:
        ledger.spend(user=alice, amount=1001, reference="generation:big")
    alice.refresh_from_db()
    assert alice.credits == 1000
    assert (raised.value.needed, raised.value.balance) == (1001, 1000)
    assert not LedgerEntry.objects.filter(kind=EntryKind.SPEND).exists()


def test_one_reference_is_spent_at_most_once(alice):
    ledger.spend(user=alice, amount=100, reference="generation:twice")
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger.spend(user=alice, amount=100, reference="generation:twice")
    alice.refresh_from_db()
    assert alice.credits == 900


def test_a_refund_happens_once_per_reference(alice):
    ledger.spend(user=alice, amount=100, reference="generation:r")
    assert ledger.refund(user_id=alice.pk, amount=100, reference="generation:r") is not None
    assert ledger.refund(user_id=alice.pk, amount=100, reference="generation:r") is None
    alice.refresh_from_db()
    assert alice.credits == 1000
    assert ledger_sum(alice) == 1000


def test_the_database_refuses_a_negative_balance(alice):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {User._meta.db_table} SET credits = -1 WHERE id = %s", [alice.pk])


def test_an_adjustment_records_its_actor_and_reason(alice, bob):
    entry = ledger.adjust(
        user=alice, amount=-50, kind=EntryKind.ADJUSTMENT, actor=bob, reason="Duplicate bonus"
    )
    assert (entry.actor, entry.reason, entry.balance_after) == (bob, "Duplicate bonus", 950)


def test_spends_and_refunds_are_not_adjustments(alice):
    # Their one-per-generation guarantee lives in spend() and refund(); adjust() must not bypass it.
    for kind in (EntryKind.SPEND, EntryKind.REFUND):
        with pytest.raises(ValueError):
            ledger.adjust(user=alice, amount=-5, kind=kind)
    assert LedgerEntry.objects.filter(user=alice).count() == 1
