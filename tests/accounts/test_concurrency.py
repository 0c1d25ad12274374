"""Money under concurrency, on PostgreSQL: many threads, each with its own connection, released together by a
barrier so that their transactions really overlap."""

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Sum

from accounts.ledger import InsufficientCredits
from accounts.models import EntryKind, LedgerEntry, Membership
from studio.engine.services import generation_fail, generation_refund, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def nothing_is_enqueued(monkeypatch, settings):
    monkeypatch.setattr("studio.engine.queue.run_generation", lambda generation_id: None)
    settings.CREDIT_PRICES = {}
    settings.CREDITS_PER_IMAGE = 100


def run_together(count: int, work: Callable[[int], object]) -> tuple[list, list[BaseException]]:
    """Run `work(index)` in `count` threads started at the same instant; their results and errors."""
    barrier = threading.Barrier(count)
    results: list = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def thread_main(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            result = work(index)
            with lock:
                results.append(result)
        except BaseException as error:
            with lock:
                errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=thread_main, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results, errors


def personal_membership_id(user) -> int:
    return Membership.objects.get(user=user, workspace__is_personal=True).pk


def submit(membership_id: int, idempotency_key: str = "") -> Generation:
    # Each thread loads its own membership, as each request would.
    membership = Membership.objects.select_related("user", "workspace").get(pk=membership_id)
    return generation_submit(
        membership=membership, spec=GenerationSpec.build(prompt="race"), idempotency_key=idempotency_key
    )


def ledger_sum(user) -> int:
    return LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or 0


def test_fifty_concurrent_submissions_with_credits_for_ten_make_exactly_ten(alice):
    assert alice.credits == 1000  # ten images at 100
    membership_id = personal_membership_id(alice)

    generations, errors = run_together(50, lambda index: submit(membership_id))

    assert len(generations) == 10
    assert len(errors) == 40 and all(isinstance(error, InsufficientCredits) for error in errors), errors
    alice.refresh_from_db()
    assert alice.credits == 0
    assert Generation.objects.count() == 10
    assert LedgerEntry.objects.filter(user=alice, kind=EntryKind.SPEND).count() == 10
    assert ledger_sum(alice) == alice.credits
    # Every entry's running balance is consistent: no two spends saw the same balance.
    balances = sorted(
        LedgerEntry.objects.filter(kind=EntryKind.SPEND).values_list("balance_after", flat=True)
    )
    assert balances == list(range(0, 1000, 100))


def test_twenty_concurrent_submissions_with_one_key_make_one_generation_and_one_charge(alice):
    membership_id = personal_membership_id(alice)

    generations, errors = run_together(20, lambda index: submit(membership_id, idempotency_key="click-42"))

    assert errors == []
    assert len({generation.pk for generation in generations}) == 1
    assert Generation.objects.count() == 1
    alice.refresh_from_db()
    assert alice.credits == 900
    assert LedgerEntry.objects.filter(kind=EntryKind.SPEND).count() == 1
    assert ledger_sum(alice) == alice.credits


def test_twenty_concurrent_refunds_of_one_failed_generation_refund_once(alice):
    generation = submit(personal_membership_id(alice))
    # Failed without its refund, as after a crash between the two: the admin's refund is what races here.
    Generation.objects.filter(pk=generation.pk).update(status=Status.FAILED)

    def refund(index: int) -> bool:
        return generation_refund(Generation.objects.get(pk=generation.pk), reason=f"refund {index}")

    results, errors = run_together(20, refund)

    assert errors == []
    assert sorted(results) == [False] * 19 + [True]
    assert (
        LedgerEntry.objects.filter(kind=EntryKind.REFUND, reference=generation.ledger_reference).count() == 1
    )
    alice.refresh_from_db()
    assert alice.credits == 1000 == ledger_sum(alice)


def test_twenty_concurrent_failures_of_one_generation_fail_and_refund_once(alice):
    generation = submit(personal_membership_id(alice))

    def fail(index: int) -> bool:
        return generation_fail(Generation.objects.get(pk=generation.pk), message=f"failure {index}")

    results, errors = run_together(20, fail)

    assert errors == []
    assert sorted(results) == [False] * 19 + [True]
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert LedgerEntry.objects.filter(kind=EntryKind.REFUND).count() == 1
    alice.refresh_from_db()
    assert alice.credits == 1000 == ledger_sum(alice)
