"""The worker as production runs it (the thread pool, real Redis): a full worker takes the next task as soon
as a slot frees up, rather than when its event loop next wakes by itself (up to ten seconds later)."""

import threading
import time

import pytest
from celery.signals import task_postrun, task_prerun

from accounts import ledger
from accounts.models import EntryKind
from config.celery import app
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status
from tests.helpers import personal_membership
from tests.workers import new_queue, worker_in_process

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def test_a_full_worker_takes_the_next_task_when_a_slot_frees(settings, alice):
    settings.LOCAL_PROVIDER_STEP_SECONDS = 0.05
    ledger.adjust(user=alice, amount=10_000, kind=EntryKind.GRANT, reason="test")
    membership = personal_membership(alice)
    started: list[float] = []
    ended: list[float] = []
    lock = threading.Lock()

    def on_prerun(task=None, **kwargs):
        if task is not None and task.name == "studio.tasks.run_generation":
            with lock:
                started.append(time.monotonic())

    def on_postrun(task=None, **kwargs):
        if task is not None and task.name == "studio.tasks.run_generation":
            with lock:
                ended.append(time.monotonic())

    task_prerun.connect(on_prerun, weak=False)
    task_postrun.connect(on_postrun, weak=False)
    try:
        # Two slots, twelve tasks queued at once: the worker is full from the first moment.
        with worker_in_process(new_queue(), concurrency=2):
            for number in range(12):
                generation_submit(membership=membership, spec=GenerationSpec(prompt=f"fill {number}"))
            deadline = time.monotonic() + 120
            while Generation.objects.filter(status__in=(Status.QUEUED, Status.RUNNING)).exists():
                assert time.monotonic() < deadline, "the queue did not drain in two minutes"
                time.sleep(0.1)
            while len(ended) < 12 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        task_prerun.disconnect(on_prerun)
        task_postrun.disconnect(on_postrun)

    assert Generation.objects.filter(status=Status.SUCCEEDED).count() == 12
    assert len(started) == len(ended) == 12
    # Every task after the first two waited for a slot: it starts soon after the earlier task that made room.
    waits = [start - sorted(ended)[index] for index, start in enumerate(sorted(started)[2:])]
    assert max(waits) < 2.0, f"tasks waited for a free slot: {[round(wait, 2) for wait in waits]} s"


def test_one_result_backend_serves_every_thread():
    """Sending a task reads the app's result backend; built per thread, it cost every request (a thread of its
    own under ASGI) a scan of the installed packages' entry points."""
    backends = []

    def read_it() -> None:
        backends.append(app.backend)

    for _ in range(3):
        thread = threading.Thread(target=read_it)
        thread.start()
        thread.join()
    assert len({id(backend) for backend in backends}) == 1
