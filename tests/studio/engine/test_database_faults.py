"""PostgreSQL goes away under a worker: every backend of the test database is terminated, again and again
for ten seconds (the outage of the issue's report), while a worker process draws. The generations in flight
ride it out (each write tried again on a fresh connection) and are drawn, not failed; nothing is charged
twice or lost."""

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from accounts.models import EntryKind, LedgerEntry
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Status
from tests.helpers import personal_membership
from tests.workers import WorkerProcess, discard_queue, new_queue, tasks_sent_to, wait_until

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="terminating backends is PostgreSQL's: set DATABASE_URL=postgres://... to run it",
    ),
]


def terminate_backends_for(seconds: float) -> int:
    """From a connection to another database, terminate the test database's backends until `seconds` pass."""
    database = settings.DATABASES["default"]
    killed = 0
    with psycopg.connect(
        host=database.get("HOST") or "127.0.0.1",
        port=database.get("PORT") or 5432,
        user=database.get("USER"),
        password=database.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [database["NAME"]],
            ).fetchall()
            killed += len(rows)
            time.sleep(0.1)
    return killed


def test_generations_in_flight_ride_out_terminated_backends(alice, tmp_path):
    queue = new_queue()
    worker = WorkerProcess(queue, tmp_path / "worker.log", LOCAL_PROVIDER_STEP_SECONDS="0.5").start()
    try:
        with tasks_sent_to(queue):
            generations = [
                generation_submit(
                    membership=personal_membership(alice),
                    spec=GenerationSpec.build(prompt=f"a comet through the outage {n}", partial_images=3),
                    provider="local",
                )
                for n in range(4)
            ]
        for generation in generations:
            wait_until(generation, lambda g: g.partial_count >= 1, timeout=60, what="the worker to draw")
        connection.close()
        try:
            assert terminate_backends_for(10) > 0, "nothing was terminated"
        finally:
            # This process's connections were terminated too. Its pool would get new ones, but only after
            # the backoff it took while every new connection was being terminated: start it afresh.
            connection.close()
            if hasattr(connection, "close_pool"):
                connection.close_pool()
        for generation in generations:
            wait_until(generation, lambda g: not g.is_active, timeout=90, what="a generation to end")
        assert worker.process.poll() is None, worker.log[-3000:]
    finally:
        worker.kill()
        discard_queue(queue)

    assert [generation.status for generation in generations] == [Status.SUCCEEDED] * 4, worker.log[-3000:]
    assert "the database is unavailable; trying again" in worker.log
    for generation in generations:
        entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
        assert entries.filter(kind=EntryKind.SPEND).count() == 1
        assert not entries.filter(kind=EntryKind.REFUND).exists()
    alice.refresh_from_db()
    assert alice.credits == 1000 - sum(generation.cost for generation in generations)
