"""Real Celery workers for tests: one in this process (a thread pool, as in production), or one in a separate
process that a test can kill. Both consume a queue of the test's own from real Redis."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from studio.models import Generation

REPOSITORY = Path(__file__).resolve().parents[1]


def new_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def tasks_sent_to(queue: str) -> Iterator[str]:
    """Tasks enqueued meanwhile (generation_submit) go to `queue`."""
    # The settings' name (CELERY_TASK_DEFAULT_QUEUE, loaded with the CELERY namespace) is what Celery reads:
    # setting only `task_default_queue` is silently ignored.
    previous = celery_app.conf.task_default_queue
    celery_app.conf.update(CELERY_TASK_DEFAULT_QUEUE=queue, task_default_queue=queue)
    try:
        yield queue
    finally:
        celery_app.conf.update(CELERY_TASK_DEFAULT_QUEUE=previous, task_default_queue=previous)


@contextlib.contextmanager
def worker_in_process(queue: str, *, concurrency: int = 4) -> Iterator[None]:
    """A worker in this process, on its own threads, consuming `queue` (tasks sent meanwhile go there)."""
    with (
        tasks_sent_to(queue),
        start_worker(
            celery_app,
            pool="threads",
            concurrency=concurrency,
            perform_ping_check=False,
            queues=[queue],
            loglevel="warning",
            shutdown_timeout=30,
        ),
    ):
        yield


class FinishedTasks:
    """The generations whose run_generation task has ended in this process (Celery's task_postrun)."""

    def __init__(self) -> None:
        self._finished: set[str] = set()
        self._changed = threading.Condition()

    def _on_postrun(self, task=None, args=None, **kwargs) -> None:
        if task is not None and task.name == "studio.tasks.run_generation" and args:
            with self._changed:
                self._finished.add(str(args[0]))
                self._changed.notify_all()

    def wait(self, generation: Generation, timeout: float = 30) -> Generation:
        """Wait until the generation's task has ended; return the generation as it is then."""
        with self._changed:
            if not self._changed.wait_for(lambda: str(generation.pk) in self._finished, timeout):
                generation.refresh_from_db()
                raise AssertionError(f"the task of {generation.pk} did not end ({generation.status})")
        generation.refresh_from_db()
        return generation

    @contextlib.contextmanager
    def listening(self) -> Iterator["FinishedTasks"]:
        task_postrun.connect(self._on_postrun, weak=False)
        try:
            yield self
        finally:
            task_postrun.disconnect(self._on_postrun)


def wait_until(generation: Generation, condition, *, timeout: float = 30, what: str = "") -> Generation:
    """Poll the database until `condition(generation)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        generation.refresh_from_db()
        if condition(generation):
            return generation
        if time.monotonic() > deadline:
            raise AssertionError(
                f"waited {timeout}s for {what or 'a condition'}: {generation.status} ({generation.stage!r})"
            )
        time.sleep(0.05)


def database_url() -> str:
    """The URL of the test database (as pytest-django set it up), for a worker in another process."""
    database = settings.DATABASES["default"]
    if "sqlite" in database["ENGINE"]:
        return f"sqlite:///{database['NAME']}?timeout=30"
    credentials = quote(database.get("USER") or "", safe="")
    if database.get("PASSWORD"):
        credentials += ":" + quote(database["PASSWORD"], safe="")
    host = database.get("HOST") or "127.0.0.1"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{database['NAME']}"


class WorkerProcess:
    """`celery -A config worker --pool threads` in its own process group, as production runs it."""

    def __init__(self, queue: str, log_path: Path, **environment: str):
        self.queue = queue
        self.log_path = log_path
        self.environment = environment
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        env = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI_")}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": database_url(),
                "REDIS_URL": settings.REDIS_URL,
                "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
                "MEDIA_ROOT": str(settings.MEDIA_ROOT),
                "STUDIO_PROVIDER": "local",
                "PYTHONUNBUFFERED": "1",
                **self.environment,
            }
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "config", "worker",
                    "--pool", "threads", "--concurrency", "4", "-Q", self.queue,
                    "--hostname", f"{self.queue}-{uuid.uuid4().hex[:4]}@%h", "--loglevel", "INFO",
                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                ],
                cwd=REPOSITORY,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill it whole
            )  # fmt: skip
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the worker exited ({self.process.returncode}):\n{self.log[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker never logged {text!r}:\n{self.log[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown handler, no acknowledgement, nothing runs."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL if it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> "WorkerProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def unacknowledged(queue: str) -> list[str]:
    """Delivery tags of messages of `queue` that a worker took and never acknowledged."""
    with celery_app.connection_for_write() as broker:
        channel = broker.default_channel
        tags = []
        for tag, payload in channel.client.hgetall(channel.unacked_key).items():
            _message, _exchange, routing_key = json.loads(payload)
            if routing_key == queue:
                tags.append(tag.decode() if isinstance(tag, bytes) else tag)
        return tags


def waiting_in(queue: str) -> int:
    """Messages of `queue` not yet handed to a worker."""
    with celery_app.connection_for_write() as broker:
        return broker.default_channel.client.llen(queue)


def wait_until_acknowledged(queue: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while unacknowledged(queue) or waiting_in(queue):
        if time.monotonic() > deadline:
            raise AssertionError(f"the messages of {queue} were never acknowledged")
        time.sleep(0.1)


def redeliver(queue: str) -> int:
    """Put the unacknowledged messages of `queue` back on it, marked redelivered.

    This is what the Redis transport itself does once a message has been unacknowledged past the visibility
    timeout (kombu's QoS.restore_by_tag, the same call). Doing it for this queue only, instead of waiting
    for a worker with a tiny visibility timeout, keeps the test from redelivering other runs' messages on a
    shared Redis.
    """
    tags = unacknowledged(queue)
    with celery_app.connection_for_write() as broker:
        channel = broker.default_channel
        for tag in tags:
            channel.qos.restore_by_tag(tag)
    return len(tags)


def discard_queue(queue: str) -> None:
    """Leave nothing of the test's queue in Redis."""
    with celery_app.connection_for_write() as broker:
        channel = broker.default_channel
        for tag in unacknowledged(queue):
            channel.client.hdel(channel.unacked_key, tag)
            channel.client.zrem(channel.unacked_index_key, tag)
        with contextlib.suppress(Exception):
            channel.queue_purge(queue)
        with contextlib.suppress(Exception):
            channel.queue_delete(queue)


def close_connection_after(function):
    """For helpers run in another thread: leave no database connection behind."""

    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return wrapper
