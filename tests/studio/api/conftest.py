"""A running studio for API clients: Daphne in a subprocess on the test database, and a real Celery worker in
this process; both share the test's media folder and Redis."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.workers import database_url, worker_in_process

ROOT = Path(__file__).resolve().parents[3]
# The Daphne process behind each studio_url, for tests that watch it (its memory, say).
SERVER_PIDS: dict[str, int] = {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def task_queue() -> str:
    """The Celery queue the server enqueues to and the test worker consumes."""
    return f"test-api-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def serving_studio(directory: Path, queue: str, **environment: str) -> Iterator[str]:
    """Daphne serving the studio on the test database in a subprocess, its tasks sent to `queue`; yields its
    base URL. `environment` overrides its settings."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "STUDIO_DATA_DIR": str(directory / "api-server-data"),
        "API_RATE_LIMIT_PER_MINUTE": "1000",
        "CELERY_QUEUE": queue,
        "STUDIO_PROVIDER": "local",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1",
        "OPENAI_API_KEY": "",
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    log = open(directory / f"daphne-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(Path(log.name).read_text()) from None
            time.sleep(0.2)
    SERVER_PIDS[url] = process.pid
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def studio_url(django_db_setup, django_db_blocker, private_media_root, task_queue):
    """The base URL of a Daphne serving the studio on the test database."""
    with serving_studio(
        Path(private_media_root).parent, task_queue, MEDIA_ROOT=str(private_media_root)
    ) as url:
        yield url


@pytest.fixture
def worker(settings, task_queue):
    settings.LOCAL_PROVIDER_STEP_SECONDS = 0.1
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the test's receiver listens on 127.0.0.1
    settings.WEBHOOK_RETRY_BACKOFF_SECONDS = 0.2
    with worker_in_process(task_queue):
        yield task_queue
