import pytest
from django.core.exceptions import PermissionDenied
from django.db.models import Sum

from accounts.ledger import InsufficientCredits
from accounts.models import EntryKind, LedgerEntry
from studio.engine.services import generation_cancel, generation_fail, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Project, Status


def membership_of(user):
    return user.memberships.select_related("workspace", "user").get(workspace__is_personal=True)


def test_submitting_creates_a_queued_generation_and_spends_in_the_same_transaction(alice):
    generation = generation_submit(membership=membership_of(alice), spec=GenerationSpec.build(prompt="a fox"))
    alice.refresh_from_db()
    assert generation.status == Status.QUEUED
    assert generation.cost == 100 and alice.credits == 900
    spend = LedgerEntry.objects.get(kind=EntryKind.SPEND)
    assert spend.reference == f"generation:{generation.pk}" and spend.amount == -100
    assert generation.project == Project.default_for(generation.workspace)


def test_the_task_is_enqueued_only_on_commit(alice, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "studio.engine.queue.run_generation", lambda generation_id: sent.append(str(generation_id))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        generation = generation_submit(
            membership=membership_of(alice), spec=GenerationSpec.build(prompt="a fox")
        )
    assert sent == []
    for callback in callbacks:
        callback()
    assert sent == [str(generation.pk)]


def test_insufficient_credits_creates_nothing_and_spends_nothing(alice):
    generation_submit(membership=membership_of(alice), spec=GenerationSpec.build(prompt="x", n=10))
    with pytest.raises(InsufficientCredits):
        generation_submit(membership=membership_of(alice), spec=GenerationSpec.build(prompt="x", n=1))
    alice.refresh_from_db()
    assert Generation.objects.count() == 1
    assert alice.credits == 0
    assert LedgerEntry.objects.filter(user=alice).aggregate(total=Sum("amount"))["total"] == 0


def test_the_same_idempotency_key_makes_one_generation_and_one_charge(alice):
    spec = GenerationSpec.build(prompt="x")
    first = generation_submit(membership=membership_of(alice), spec=spec, idempotency_key="click-1")
    second = generation_submit(membership=membership_of(alice), spec=spec, idempotency_key="click-1")
    alice.refresh_from_db()
    assert first.pk == second.pk
    assert alice.credits == 900


def test_a_viewer_cannot_generate(team):
    with pytest.raises(PermissionDenied):
        generation_submit(membership=team["memberships"]["viewer"], spec=GenerationSpec.build(prompt="x"))
    assert not Generation.objects.exists()


def test_failing_refunds_once_with_a_refund_entry(alice):
    generation = generation_submit(
        membership=membership_of(alice), spec=GenerationSpec.build(prompt="x", n=2)
    )
    assert generation_fail(generation, message="The upstream said no.")
    assert not generation_fail(generation, message="again")
    alice.refresh_from_db()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error == "The upstream said no."
    assert alice.credits == 1000
    refund = LedgerEntry.objects.get(kind=EntryKind.REFUND)
    assert refund.amount == 200


def test_the_author_cancels_and_is_refunded(alice):
    membership = membership_of(alice)
    generation = generation_submit(membership=membership, spec=GenerationSpec.build(prompt="x"))
    assert generation_cancel(generation, membership=membership)
    assert not generation_cancel(generation, membership=membership)
    alice.refresh_from_db()
    assert generation.status == Status.CANCELED and alice.credits == 1000


def test_only_the_author_or_an_owner_cancels(team):
    generation = generation_submit(
        membership=team["memberships"]["editor"], spec=GenerationSpec.build(prompt="x")
    )
    with pytest.raises(PermissionDenied):
        generation_cancel(generation, membership=team["memberships"]["viewer"])
    assert generation_cancel(generation, membership=team["memberships"]["owner"])


@pytest.fixture
def webhooks_sent(monkeypatch):
    sent = []
    monkeypatch.setattr("studio.engine.queue.run_generation", lambda generation_id: None)
    monkeypatch.setattr(
        "studio.engine.queue.deliver_webhook", lambda generation_id: sent.append(generation_id)
    )
    return sent


def test_a_task_that_ends_enqueues_its_webhook_once_and_only_on_commit(
    alice, webhooks_sent, django_capture_on_commit_callbacks
):
    generation = generation_submit(
        membership=membership_of(alice),
        spec=GenerationSpec.build(prompt="a kite"),
        callback_url="https://receiver.example/hooks",
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert generation_fail(generation, message="upstream down", code="upstream_error")
        # Told again (the runner publishes after the sweeper, the sweeper after a cancel): still one webhook.
        assert not generation_fail(generation, message="again", code="upstream_error")
        assert not generation_cancel(generation, membership=membership_of(alice))
    assert webhooks_sent == []
    for callback in callbacks:
        callback()
    assert webhooks_sent == [generation.pk]


def test_a_rolled_back_end_enqueues_no_webhook(alice, webhooks_sent, django_capture_on_commit_callbacks):
    from django.db import transaction

    generation = generation_submit(
        membership=membership_of(alice),
        spec=GenerationSpec.build(prompt="a kite"),
        callback_url="https://receiver.example/hooks",
    )
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        generation_fail(generation, message="upstream down")
        raise RuntimeError("the transaction fails after the transition")
    assert webhooks_sent == []
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED


def test_a_generation_without_a_callback_enqueues_no_webhook(
    alice, webhooks_sent, django_capture_on_commit_callbacks
):
    generation = generation_submit(membership=membership_of(alice), spec=GenerationSpec.build(prompt="x"))
    with django_capture_on_commit_callbacks(execute=True):
        generation_cancel(generation, membership=membership_of(alice))
    assert webhooks_sent == []
