"""The API under faults, with real processes: Daphne in a subprocess, the test's own redis-server stopped
under it, the database pool exhausted by a held row lock. Every answer is JSON in the dialect's shape
(never an HTML page, never a 500), a request the studio cannot take is a 503 with Retry-After and charges
nothing, and a submission accepted while the broker is away is drawn once it is back."""

import concurrent.futures
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection, transaction

from accounts.models import ApiKey, EntryKind, LedgerEntry, User
from studio.engine import sweeper
from studio.management.embedded_redis import EmbeddedRedis
from studio.models import Generation, Status
from tests.helpers import personal_membership
from tests.studio.api.conftest import serving_studio
from tests.workers import discard_queue, new_queue, wait_until, worker_in_process

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

TASK = {"prompt": "a lighthouse in fog", "size": "1024x1024", "quality": "low"}


def key_for(user: User) -> dict[str, str]:
    _, secret = ApiKey.issue(user=user, workspace=personal_membership(user).workspace, name="faults")
    return {"Authorization": f"Bearer {secret}"}


def spent(user: User) -> int:
    return LedgerEntry.objects.filter(user=user, kind=EntryKind.SPEND).count()


@pytest.fixture
def queue():
    name = new_queue()
    yield name
    discard_queue(name)


@pytest.fixture
def stopped_redis(tmp_path):
    """A redis-server of the test's own, for a server to lose: started, and stopped by the test."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def test_with_redis_gone_the_api_answers_json_from_the_database_and_keeps_submissions(
    alice, tmp_path, queue, stopped_redis
):
    headers = key_for(alice)
    environment = {
        "REDIS_URL": stopped_redis.url,
        "CELERY_BROKER_URL": f"redis+socket://{stopped_redis.socket}",
    }
    with serving_studio(tmp_path, queue, **environment) as url, httpx.Client(base_url=url, timeout=30) as api:
        before = api.post("/api/v1/tasks", json=TASK, headers=headers)
        assert before.status_code == 202, before.text
        stopped_redis.stop()

        status = api.get(f"/api/v1/tasks/{before.json()['id']}", headers=headers)
        assert status.status_code == 200 and status.json()["status"] == "queued"
        accepted = api.post("/api/v1/tasks", json={**TASK, "prompt": "kept for later"}, headers=headers)
        assert accepted.status_code == 202, accepted.text
        unknown = api.get("/api/v1/tasks/not-a-task", headers=headers)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"]
        sjinn = api.post("/api/un-api/query_tool_task_status", json={"task_id": "x"}, headers=headers)
        assert sjinn.headers["content-type"] == "application/json" and sjinn.json()["success"] is False
        ready = api.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"

    kept = Generation.objects.get(prompt="kept for later")
    assert kept.status == Status.QUEUED and kept.task_pending
    assert spent(alice) == 2

    # The broker is back: the sweeper sends the kept task and a worker draws it.
    with worker_in_process(queue):
        assert sweeper.resend_pending_tasks() == 1
        wait_until(kept, lambda g: g.status == Status.SUCCEEDED, timeout=60, what="the kept submission")
    kept.refresh_from_db()
    assert not kept.task_pending
    alice.refresh_from_db()
    assert alice.credits == 1000 - 2 * kept.cost


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="the connection pool is PostgreSQL's: set DATABASE_URL=postgres://... to run it",
)
def test_an_exhausted_pool_answers_503_with_retry_after_and_charges_nothing(alice, tmp_path, queue):
    headers = key_for(alice)
    environment = {"DB_POOL_MAX_SIZE": "1", "DB_POOL_MIN_SIZE": "1", "DB_POOL_TIMEOUT": "0.5"}
    with serving_studio(tmp_path, queue, **environment) as url, httpx.Client(base_url=url, timeout=30) as api:
        assert api.get("/healthz").status_code == 200
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            with transaction.atomic():
                # Hold alice's row: the first submission takes the server's one connection and waits for the
                # lock, so every other request waits for the pool in vain.
                User.objects.select_for_update().get(pk=alice.pk)
                first = pool.submit(api.post, "/api/v1/tasks", json=TASK, headers=headers)
                wait_for_lock_waiter(first)
                burst = [{**TASK, "prompt": f"burst {n}"} for n in range(6)]
                others = [
                    pool.submit(api.post, "/api/v1/tasks", json=task, headers=headers) for task in burst
                ]
                sjinn = pool.submit(
                    api.post,
                    "/api/un-api/create_tool_task",
                    json={"tool_type": "gpt-image-2-api", "input": {"prompt": "x"}},
                    headers=headers,
                )
                refused = [future.result() for future in others]
                sjinn_refused = sjinn.result()
            accepted = first.result()

    assert accepted.status_code == 202, accepted.text
    for response in refused:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "service_unavailable"
    assert sjinn_refused.status_code == 503 and sjinn_refused.json()["success"] is False
    assert spent(alice) == 1
    alice.refresh_from_db()
    assert alice.credits == 1000 - Generation.objects.get().cost


def wait_for_lock_waiter(request: concurrent.futures.Future, timeout: float = 10) -> None:
    """Until another session waits on a row lock (the server's submission, blocked on alice's row)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            assert not request.done(), f"the request did not wait: {request.result().text}"
            # Within a transaction the statistics views keep their first snapshot unless told otherwise.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("no request ever waited for the lock")
