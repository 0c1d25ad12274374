"""Stuck and killed work: the sweeper fails and refunds what nobody is working on; a worker killed with
SIGKILL mid-generation leaves nothing running forever and nothing charged twice; a task redelivered after
its worker died takes the generation over only when its old runner has gone silent."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import EntryKind, LedgerEntry
from studio.engine import runner, sweeper, tasks
from studio.engine.providers import Completed, FinalImage
from studio.engine.services import generation_cancel, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status
from tests.conftest import png_bytes
from tests.helpers import finished_generation, personal_membership
from tests.workers import (
    WorkerProcess,
    discard_queue,
    new_queue,
    redeliver,
    tasks_sent_to,
    unacknowledged,
    wait_until,
    wait_until_acknowledged,
    waiting_in,
)

STALE_SECONDS = 60


@pytest.fixture
def unconsumed_queue():
    """Tasks enqueued on commit (transactional tests) go to a queue no worker reads, removed afterwards."""
    queue = new_queue()
    with tasks_sent_to(queue):
        yield
    discard_queue(queue)


@pytest.fixture
def stale_after(settings):
    """A runner silent for STALE_SECONDS is both taken over by a redelivery and swept."""
    settings.GENERATION_STALE_SECONDS = STALE_SECONDS
    settings.GENERATION_TAKEOVER_SECONDS = STALE_SECONDS
    settings.GENERATION_QUEUED_MAX_SECONDS = 3600
    return STALE_SECONDS


def submitted(user, prompt: str = "a lost comet", **options) -> Generation:
    spec = GenerationSpec.build(prompt=prompt, partial_images=0, **options)
    return generation_submit(membership=personal_membership(user), spec=spec, provider="local")


def running(generation: Generation, *, silent_for: float) -> Generation:
    """Claimed by a runner that was last heard from `silent_for` seconds ago."""
    assert generation.transition(from_statuses=(Status.QUEUED,), to=Status.RUNNING, stage="Drawing")
    Generation.objects.filter(pk=generation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=silent_for)
    )
    generation.refresh_from_db()
    return generation


def queued_for(generation: Generation, seconds: float) -> Generation:
    Generation.objects.filter(pk=generation.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    generation.refresh_from_db()
    return generation


def files_of(generation: Generation) -> list[str]:
    return [path.name for path in Path(settings.MEDIA_ROOT).rglob(f"{generation.pk}*")]


def money(generation: Generation) -> dict[str, list[int]]:
    entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
    return {
        "spent": [-entry.amount for entry in entries.filter(kind=EntryKind.SPEND)],
        "refunded": [entry.amount for entry in entries.filter(kind=EntryKind.REFUND)],
    }


# The sweeper


@pytest.mark.django_db
def test_the_sweeper_fails_and_refunds_a_running_generation_whose_heartbeat_went_stale(alice, stale_after):
    generation = running(submitted(alice), silent_for=STALE_SECONDS + 5)

    assert sweeper.sweep_stuck_generations() == 1

    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "timeout"
    assert generation.error == sweeper.STALLED_ERROR
    assert money(generation) == {"spent": [generation.cost], "refunded": [generation.cost]}
    alice.refresh_from_db()
    assert alice.credits == 1000


@pytest.mark.django_db
def test_the_sweeper_fails_and_refunds_a_generation_queued_past_the_deadline(alice, stale_after):
    generation = queued_for(submitted(alice), 3600 + 5)

    assert sweeper.sweep_stuck_generations() == 1

    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error == sweeper.NEVER_STARTED_ERROR
    assert money(generation) == {"spent": [generation.cost], "refunded": [generation.cost]}


@pytest.mark.django_db
def test_the_sweeper_leaves_fresh_and_finished_generations_alone(alice, stale_after):
    fresh_running = running(submitted(alice, "one"), silent_for=STALE_SECONDS - 5)
    fresh_queued = queued_for(submitted(alice, "two"), 3600 - 5)
    done, _ = finished_generation(personal_membership(alice), "three")
    Generation.objects.filter(pk=done.pk).update(heartbeat_at=timezone.now() - timedelta(days=1))

    assert sweeper.sweep_stuck_generations() == 0

    statuses = {g.pk: g.status for g in Generation.objects.all()}
    assert statuses == {
        fresh_running.pk: Status.RUNNING,
        fresh_queued.pk: Status.QUEUED,
        done.pk: Status.SUCCEEDED,
    }
    assert not LedgerEntry.objects.filter(kind=EntryKind.REFUND).exists()


@pytest.mark.django_db
def test_sweeping_twice_refunds_once(alice, stale_after):
    generation = running(submitted(alice), silent_for=STALE_SECONDS + 5)

    assert sweeper.sweep_stuck_generations() == 1
    assert sweeper.sweep_stuck_generations() == 0

    assert money(generation) == {"spent": [generation.cost], "refunded": [generation.cost]}


@pytest.mark.django_db
def test_the_sweep_task_runs_the_sweeper_on_the_beat_schedule(alice, stale_after, settings):
    [entry] = [
        item
        for item in settings.CELERY_BEAT_SCHEDULE.values()
        if item["task"] == tasks.sweep_stuck_generations.name
    ]
    assert entry["schedule"] <= 60
    generation = running(submitted(alice), silent_for=STALE_SECONDS + 5)

    assert tasks.sweep_stuck_generations.apply().get() == 1

    generation.refresh_from_db()
    assert generation.status == Status.FAILED


# A task delivered again


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unconsumed_queue")
def test_a_killed_workers_generation_is_taken_over_before_the_sweeper_would_refund_it(alice, settings):
    settings.GENERATION_TAKEOVER_SECONDS = 60
    settings.GENERATION_STALE_SECONDS = 600
    generation = running(submitted(alice), silent_for=65)

    assert sweeper.sweep_stuck_generations() == 0  # silent past the takeover, not past the sweep
    runner.run_generation(str(generation.pk))

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED and generation.images.count() == 1
    assert money(generation) == {"spent": [generation.cost], "refunded": []}


def test_the_defaults_order_heartbeat_takeover_redelivery_and_sweep(settings):
    takeover, redelivery = settings.GENERATION_TAKEOVER_SECONDS, settings.CELERY_VISIBILITY_TIMEOUT
    longest_silence = settings.OPENAI_TIMEOUT_4K_SECONDS + settings.GENERATION_RETRY_BACKOFF_SECONDS * 2
    assert longest_silence < takeover < redelivery
    assert takeover + redelivery < settings.GENERATION_STALE_SECONDS
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == redelivery


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unconsumed_queue")
def test_a_redelivered_task_takes_over_a_generation_whose_runner_went_silent_and_finishes_it(
    alice, stale_after
):
    generation = running(submitted(alice), silent_for=STALE_SECONDS + 5)
    first_claim = generation.started_at

    runner.run_generation(str(generation.pk))

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED and generation.images.count() == 1
    assert generation.started_at > first_claim and generation.attempts == 1
    assert money(generation) == {"spent": [generation.cost], "refunded": []}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unconsumed_queue")
def test_a_redelivered_task_leaves_a_generation_with_a_fresh_heartbeat_to_its_runner(alice, stale_after):
    generation = running(submitted(alice), silent_for=STALE_SECONDS - 5)
    before = (generation.seq, generation.started_at, generation.heartbeat_at)

    with pytest.raises(runner.CheckAgainLater) as later:
        runner.run_generation(str(generation.pk))
    assert 5 <= later.value.seconds <= 7  # when the runner would count as gone, plus a second

    generation.refresh_from_db()
    assert generation.status == Status.RUNNING
    assert (generation.seq, generation.started_at, generation.heartbeat_at) == before
    assert money(generation) == {"spent": [generation.cost], "refunded": []}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unconsumed_queue")
@pytest.mark.parametrize("end", ["failed", "canceled", "succeeded"])
def test_a_redelivered_task_does_nothing_for_a_finished_generation(alice, stale_after, end):
    generation = running(submitted(alice), silent_for=STALE_SECONDS + 5)
    if end == "failed":
        sweeper.sweep_stuck_generations()
    elif end == "canceled":
        generation_cancel(generation, membership=personal_membership(alice))
    else:
        generation.transition(from_statuses=(Status.RUNNING,), to=Status.SUCCEEDED)
    generation.refresh_from_db()
    before = (generation.status, generation.seq)
    ledger_before = money(generation)

    runner.run_generation(str(generation.pk))

    generation.refresh_from_db()
    assert (generation.status, generation.seq) == before == (end, before[1])
    assert money(generation) == ledger_before


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unconsumed_queue")
def test_the_sweeper_and_a_takeover_never_both_win(alice, stale_after):
    swept_first = running(submitted(alice, "one"), silent_for=STALE_SECONDS + 5)
    taken_first = running(submitted(alice, "two"), silent_for=STALE_SECONDS + 5)

    runner.run_generation(str(taken_first.pk))  # taken over and finished: its heartbeat is fresh again
    assert sweeper.sweep_stuck_generations() == 1
    runner.run_generation(str(swept_first.pk))

    swept_first.refresh_from_db()
    taken_first.refresh_from_db()
    assert (swept_first.status, taken_first.status) == (Status.FAILED, Status.SUCCEEDED)
    assert money(swept_first) == {"spent": [swept_first.cost], "refunded": [swept_first.cost]}
    assert money(taken_first) == {"spent": [taken_first.cost], "refunded": []}


@pytest.mark.django_db
def test_a_runner_whose_generation_was_taken_over_can_no_longer_write_complete_or_fail_it(alice, stale_after):
    generation = running(submitted(alice), silent_for=STALE_SECONDS + 5)
    old_runner_view = Generation.objects.get(pk=generation.pk)
    assert runner._claim(generation) == "reclaimed"  # the new runner's claim

    with pytest.raises(runner.Canceled):
        runner._update(old_runner_view, stage="Drawing")
    result = Completed(images=[FinalImage(data=png_bytes((64, 64)))], size="64x64")
    with pytest.raises(runner.Canceled):
        runner._complete(old_runner_view, result, runner._check(result), latency=1.0)
    with pytest.raises(runner.Canceled):
        runner._fail(old_runner_view, message="The old runner gave up.", code="server_error")

    generation.refresh_from_db()
    assert generation.status == Status.RUNNING and generation.images.count() == 0
    assert money(generation) == {"spent": [generation.cost], "refunded": []}
    assert files_of(generation) == [], "the old runner's images should have been deleted"
    runner._update(generation, stage="Drawing")  # the new runner still owns it


# A worker killed with SIGKILL


@pytest.fixture
def killable(tmp_path):
    """Workers in their own processes, on a queue of this test's own; nothing is left running or queued."""
    queue = new_queue()
    workers: list[WorkerProcess] = []

    def start(**environment: str) -> WorkerProcess:
        worker = WorkerProcess(queue, tmp_path / f"worker-{len(workers) + 1}.log", **environment).start()
        workers.append(worker)
        return worker

    with tasks_sent_to(queue):
        try:
            yield start
        finally:
            for worker in workers:
                worker.kill()
            discard_queue(queue)


# A worker that counts a runner silent for a second as gone (its upstream timeouts shorter still, as the
# start-up check asks).
TAKEOVER_AFTER_A_SECOND = {
    "GENERATION_TAKEOVER_SECONDS": "1",
    "OPENAI_TIMEOUT_SECONDS": "0.2",
    "OPENAI_TIMEOUT_4K_SECONDS": "0.2",
    "GENERATION_RETRY_BACKOFF_SECONDS": "0.1",
}


def kill_mid_generation(user, start) -> tuple[Generation, WorkerProcess]:
    """Submit to a slow worker process, wait until it is drawing, SIGKILL it."""
    worker = start(LOCAL_PROVIDER_STEP_SECONDS="1")
    generation = generation_submit(
        membership=personal_membership(user),
        spec=GenerationSpec.build(prompt="a doomed comet", partial_images=3),
        provider="local",
    )
    wait_until(generation, lambda g: g.partial_count >= 1, timeout=60, what="the worker to start drawing")
    worker.kill()
    # Unacknowledged (acks_late). On a shared Redis another run's worker may already have put it back.
    assert len(unacknowledged(worker.queue)) + waiting_in(worker.queue) == 1, worker.log[-3000:]
    return generation, worker


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_generation_leaves_it_to_the_sweeper_and_its_redelivery_runs_nothing(
    alice, settings, killable
):
    generation, first = kill_mid_generation(alice, killable)
    seen = (generation.status, generation.seq, generation.heartbeat_at)
    time.sleep(1.5)  # longer than a stage: a live worker would have written meanwhile

    generation.refresh_from_db()
    assert (generation.status, generation.seq, generation.heartbeat_at) == seen, "nobody should touch it"
    settings.GENERATION_STALE_SECONDS = 1
    assert sweeper.sweep_stuck_generations() == 1
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error == sweeper.STALLED_ERROR

    # The broker hands the unacknowledged task to a new worker, which must not run or charge it again.
    redeliver(first.queue)
    assert waiting_in(first.queue) == 1
    second = killable(LOCAL_PROVIDER_STEP_SECONDS="0.1", **TAKEOVER_AFTER_A_SECOND)
    second.wait_for_log(f"generation {generation.pk} is failed: nothing to do", timeout=60)
    wait_until_acknowledged(second.queue)

    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.images.count() == 0
    assert money(generation) == {"spent": [generation.cost], "refunded": [generation.cost]}
    alice.refresh_from_db()
    assert alice.credits == 1000


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_generation_is_taken_over_by_the_redelivered_task(alice, killable):
    generation, first = kill_mid_generation(alice, killable)
    time.sleep(1.2)  # the new worker below counts a runner silent for a second as gone

    redeliver(first.queue)
    assert waiting_in(first.queue) == 1
    second = killable(LOCAL_PROVIDER_STEP_SECONDS="0.1", **TAKEOVER_AFTER_A_SECOND)
    wait_until(generation, lambda g: not g.is_active, timeout=60, what="the redelivered task to finish it")
    second.wait_for_log(f"generation {generation.pk}: its worker went silent; running it again")
    wait_until_acknowledged(second.queue)

    assert generation.status == Status.SUCCEEDED and generation.images.count() == 1
    assert generation.attempts == 1 and generation.partial_count >= 3
    assert money(generation) == {"spent": [generation.cost], "refunded": []}
    alice.refresh_from_db()
    assert alice.credits == 1000 - generation.cost


# The broker down when work is due to be sent


@pytest.mark.django_db
def test_tasks_and_webhooks_that_could_not_be_sent_are_sent_by_the_sweeper(
    alice, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from studio.engine import queue

    sent: list[tuple[str, str]] = []

    def broker_down(generation_id):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(queue, "run_generation", broker_down)
    monkeypatch.setattr(queue, "deliver_webhook", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        kept = submitted(alice, "sent later")
    with django_capture_on_commit_callbacks(execute=True):
        ended = submitted(alice, "ended while the broker was down")
        Generation.objects.filter(pk=ended.pk).update(callback_url="https://hooks.example.com/studio")
        ended.refresh_from_db()
        generation_cancel(ended, membership=personal_membership(alice))
    kept.refresh_from_db()
    ended.refresh_from_db()
    assert kept.task_pending and ended.webhook_pending and ended.status == Status.CANCELED

    assert sweeper.resend_pending_tasks() == 0  # still down: nothing lost, nothing cleared
    monkeypatch.setattr(queue, "run_generation", lambda pk: sent.append(("task", str(pk))))
    monkeypatch.setattr(queue, "deliver_webhook", lambda pk: sent.append(("webhook", str(pk))))
    assert sweeper.resend_pending_tasks() == 2
    assert sorted(sent) == [("task", str(kept.pk)), ("webhook", str(ended.pk))]
    kept.refresh_from_db()
    ended.refresh_from_db()
    assert not kept.task_pending and not ended.webhook_pending
    assert sweeper.resend_pending_tasks() == 0
