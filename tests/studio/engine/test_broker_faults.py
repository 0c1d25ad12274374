"""The broker fails under a worker: a real redis-server of the test's own is stopped and started again while a
worker process (threads, as production runs it) holds unacknowledged generations. The worker must survive
the restart (Celery 5.7.0 with kombu 5.7.0 died there: "Unrecoverable error: AttributeError: 'NoneType'
object has no attribute 'hostname'" while restoring its unacknowledged messages, so pyproject.toml keeps
them below 5.7), finish what it held, reconnect, and take new work once the broker is back; every credit
stays accounted for."""

import time

import pytest
from celery import Celery

from accounts.models import EntryKind, LedgerEntry
from studio.engine import queue as engine_queue
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.management.embedded_redis import EmbeddedRedis
from studio.models import Generation, Status
from tests.helpers import personal_membership
from tests.workers import WorkerProcess, new_queue, wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def private_broker(tmp_path):
    """A redis-server for this test alone, restartable on the same socket."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def sender(server: EmbeddedRedis) -> Celery:
    return Celery("test-sender", broker=f"redis+socket://{server.socket}")


def submit(user, monkeypatch, app: Celery, queue: str, prompt: str) -> Generation:
    """A generation charged as the studio charges it, its task sent to the private broker."""

    def send(generation_id: object) -> None:
        app.send_task(engine_queue.RUN_GENERATION, args=[str(generation_id)], queue=queue)

    monkeypatch.setattr(engine_queue, "run_generation", send)
    spec = GenerationSpec.build(prompt=prompt, partial_images=3)
    return generation_submit(membership=personal_membership(user), spec=spec, provider="local")


def settled(generations: list[Generation]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for generation in generations:
        generation.refresh_from_db()
        counts[generation.status] = counts.get(generation.status, 0) + 1
    return counts


def test_a_worker_survives_a_broker_restart_with_unacknowledged_tasks(
    alice, monkeypatch, private_broker, tmp_path
):
    queue = new_queue()
    app = sender(private_broker)
    worker = WorkerProcess(
        queue,
        tmp_path / "worker.log",
        REDIS_URL=private_broker.url,
        CELERY_BROKER_URL=f"redis+socket://{private_broker.socket}",
        LOCAL_PROVIDER_STEP_SECONDS="0.8",
    ).start()
    try:
        worker.wait_for_log("ready", timeout=60)
        held = [submit(alice, monkeypatch, app, queue, f"a held comet {n}") for n in range(3)]
        for generation in held:
            wait_until(
                generation, lambda g: g.status == Status.RUNNING, timeout=60, what="the worker to take it"
            )

        private_broker.stop()
        time.sleep(3)
        private_broker.start()

        for generation in held:
            wait_until(generation, lambda g: not g.is_active, timeout=120, what="a held generation to end")
        reconnected_by = time.monotonic() + 60
        while worker.log.count("Connected to redis+socket://") < 2 and time.monotonic() < reconnected_by:
            time.sleep(0.2)
        assert worker.log.count("Connected to redis+socket://") >= 2, worker.log[-4000:]
        assert worker.process.poll() is None, f"the worker died:\n{worker.log[-4000:]}"
        assert "AttributeError" not in worker.log, worker.log[-4000:]

        after = submit(alice, monkeypatch, sender(private_broker), queue, "a comet after the restart")
        wait_until(after, lambda g: g.status == Status.SUCCEEDED, timeout=60, what="work after the restart")
        assert worker.process.poll() is None
    finally:
        worker.kill()

    everything = [*held, after]
    assert settled(everything) == {Status.SUCCEEDED: 4}
    for generation in everything:
        entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
        assert entries.filter(kind=EntryKind.SPEND).count() == 1
        assert not entries.filter(kind=EntryKind.REFUND).exists()
    alice.refresh_from_db()
    assert alice.credits == 1000 - sum(generation.cost for generation in everything)


# A worker SIGKILLed mid-generation, with the broker's own redelivery (no test helper putting it back): the
# visibility timeout, the takeover and the sweep in the order config.settings checks, scaled down.
QUICK_DEADLINES = {
    "CELERY_VISIBILITY_TIMEOUT": "3",
    "GENERATION_TAKEOVER_SECONDS": "2",
    "GENERATION_STALE_SECONDS": "100",
    "OPENAI_TIMEOUT_SECONDS": "0.2",
    "OPENAI_TIMEOUT_4K_SECONDS": "0.2",
    "GENERATION_RETRY_BACKOFF_SECONDS": "0.1",
}


def test_a_killed_workers_generation_is_redelivered_by_the_broker_and_drawn(
    alice, monkeypatch, private_broker, tmp_path
):
    queue = new_queue()
    app = sender(private_broker)
    broker = {"REDIS_URL": private_broker.url, "CELERY_BROKER_URL": f"redis+socket://{private_broker.socket}"}

    def worker(name: str, step: str) -> WorkerProcess:
        environment = {**broker, **QUICK_DEADLINES, "LOCAL_PROVIDER_STEP_SECONDS": step}
        return WorkerProcess(queue, tmp_path / f"{name}.log", **environment).start()

    first = worker("first", "1")
    second = None
    try:
        generation = submit(alice, monkeypatch, app, queue, "a comet that outlives its worker")
        wait_until(generation, lambda g: g.partial_count >= 1, timeout=60, what="the first worker to draw")
        first.kill()
        second = worker("second", "0.1")
        wait_until(
            generation, lambda g: not g.is_active, timeout=90, what="the redelivered task to finish it"
        )
        second.wait_for_log(f"generation {generation.pk}: its worker went silent; running it again")
    finally:
        first.kill()
        if second is not None:
            second.kill()

    assert generation.status == Status.SUCCEEDED and generation.images.count() == 1
    entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
    assert entries.filter(kind=EntryKind.SPEND).count() == 1
    assert not entries.filter(kind=EntryKind.REFUND).exists()
    alice.refresh_from_db()
    assert alice.credits == 1000 - generation.cost
