"""Real Celery workers for tests: in-process, on a queue of the test's own, against real Redis."""

import contextlib
import uuid
from collections.abc import Iterator

from celery.contrib.testing.worker import start_worker

from config.celery import app as celery_app


@contextlib.contextmanager
def running_worker(*, concurrency: int = 4, queue: str | None = None) -> Iterator[str]:
    """Start a thread-pool worker consuming a fresh queue (or `queue`); route this process's tasks to it."""
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=concurrency,
            perform_ping_check=False,
            queues=[queue],
            loglevel="warning",
        ):
            yield queue
    finally:
        celery_app.conf.task_default_queue = previous
