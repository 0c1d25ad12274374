"""While the upstream works, the runner holds no database connection: a worker thread may wait minutes, and
a hundred waiting generations must not pin a hundred connections. Checked from inside the provider, in the
worker's own threads."""

import threading

import pytest
from django.db import connection

from accounts import ledger
from accounts.models import EntryKind
from studio.engine import runner
from studio.engine.providers import PartialImage, Transient
from studio.engine.providers.local import LocalProvider
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Status
from tests.helpers import personal_membership
from tests.workers import FinishedTasks, discard_queue, new_queue, tasks_sent_to, worker_in_process

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


class ConnectionWatchingProvider(LocalProvider):
    """The local engine, noting at every step whether this thread holds a database connection."""

    def __init__(
        self,
        *,
        fail_first_attempt: bool = False,
        arrived: threading.Barrier | None = None,
        release: threading.Event | None = None,
    ):
        super().__init__()
        self.fail_first_attempt = fail_first_attempt
        self.arrived = arrived
        self.release = release
        self.calls = 0
        self.held: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def note(self, step: str) -> None:
        with self.lock:
            self.held.append((step, connection.connection is not None))

    def generate(self, spec, *, images, mask):
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        self.note("start")
        for event in super().generate(spec, images=images, mask=mask):
            self.note(f"before {type(event).__name__}")
            yield event
            self.note(f"after {type(event).__name__}")  # resumed after the runner stored the event
            if self.arrived is not None and self.release is not None and isinstance(event, PartialImage):
                # Every generation waits here at once, as on a slow upstream, until the test has looked.
                self.arrived.wait()
                self.release.wait(timeout=60)
                self.note("waited")
            if self.fail_first_attempt and first:
                raise Transient("The image service had an internal error. Try again.", code="server_error")


def test_no_connection_is_held_while_the_provider_works_or_between_retries(alice, settings, monkeypatch):
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 0.01
    provider = ConnectionWatchingProvider(fail_first_attempt=True)
    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: provider)
    queue = new_queue()
    with tasks_sent_to(queue):
        generation = generation_submit(
            membership=personal_membership(alice),
            spec=GenerationSpec.build(prompt="a comet", partial_images=2),
        )
    discard_queue(queue)

    # Run it in a thread of its own, as a worker thread would, with no connection opened beforehand.
    thread = threading.Thread(target=runner.run_generation, args=[str(generation.pk)])
    thread.start()
    thread.join(timeout=30)

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED and generation.attempts == 2
    assert provider.calls == 2
    assert len(provider.held) > 6
    assert [step for step, held in provider.held if held] == []


def test_many_generations_wait_at_once_in_one_worker_without_holding_connections(
    alice, settings, monkeypatch
):
    in_flight = 20
    measured: dict[str, int] = {}
    arrived, release = threading.Barrier(in_flight + 1, timeout=60), threading.Event()
    provider = ConnectionWatchingProvider(arrived=arrived, release=release)
    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: provider)
    membership = personal_membership(alice)
    ledger.adjust(user=alice, amount=100 * in_flight, kind=EntryKind.GRANT, reason="Test")

    with FinishedTasks().listening() as finished, worker_in_process(new_queue(), concurrency=in_flight):
        generations = [
            generation_submit(
                membership=membership, spec=GenerationSpec.build(prompt=f"comet {number}", partial_images=1)
            )
            for number in range(in_flight)
        ]
        try:
            arrived.wait()  # every generation now waits inside the provider, a partial image stored
        except threading.BrokenBarrierError:
            release.set()
            raise
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                measured["connections"], measured["busy"] = cursor.fetchone()
        release.set()
        for generation in generations:
            finished.wait(generation)

    assert {generation.status for generation in generations} == {Status.SUCCEEDED}
    assert [step for step, held in provider.held if held] == []
    if "connections" in measured:
        # Handed back: none busy (in a query or a transaction). With the pool they stay open in it, never
        # more than its size; without it they are closed.
        pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
        limit = pool["max_size"] if pool else 2
        assert measured["busy"] == 0, f"{measured['busy']} connections busy while waiting"
        assert measured["connections"] <= limit, f"{measured['connections']} connections open while waiting"
