"""Canceling, with a real worker: a running generation stops, keeps its canceled status and is refunded once;
a queued one is never run."""

import logging

import pytest
from django.core.files.storage import default_storage

from accounts.models import EntryKind, LedgerEntry
from studio.engine import runner
from studio.engine.providers import Completed, FinalImage
from studio.engine.services import generation_cancel, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status
from tests.conftest import png_bytes
from tests.helpers import attempt_lines, personal_membership
from tests.workers import (
    FinishedTasks,
    discard_queue,
    new_queue,
    tasks_sent_to,
    wait_until,
    worker_in_process,
)

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def finished():
    with FinishedTasks().listening() as tasks:
        yield tasks


@pytest.fixture
def slow_worker(settings):
    """The local engine, half a second per stage: slow enough to cancel mid-run."""
    settings.LOCAL_PROVIDER_STEP_SECONDS = 0.5
    with worker_in_process(new_queue()):
        yield


@pytest.fixture
def deleted_files(monkeypatch) -> list[str]:
    """Names the storage was asked to delete (by the runner, in its worker thread)."""
    deleted: list[str] = []
    delete = default_storage.delete

    def spy(name):
        deleted.append(name)
        delete(name)

    monkeypatch.setattr(default_storage, "delete", spy)
    return deleted


def refunds_of(generation: Generation) -> list[int]:
    entries = LedgerEntry.objects.filter(reference=generation.ledger_reference, kind=EntryKind.REFUND)
    return list(entries.values_list("amount", flat=True))


def attempt_outcomes(caplog, generation: Generation) -> list[str]:
    return [line["outcome"] for line in attempt_lines(caplog, generation)]


def test_the_author_cancels_a_running_generation_and_the_runner_stops_without_storing_anything(
    slow_worker, finished, alice, caplog, deleted_files
):
    caplog.set_level(logging.INFO, logger="studio.engine.runner")
    membership = personal_membership(alice)
    generation = generation_submit(
        membership=membership, spec=GenerationSpec.build(prompt="a slow comet", partial_images=3)
    )
    wait_until(generation, lambda g: g.partial_count >= 1, what="a first partial image")

    assert generation_cancel(generation, membership=membership)
    partials_when_canceled = generation.partial_count
    generation = finished.wait(generation)

    assert generation.status == Status.CANCELED and generation.stage == "Canceled"
    assert generation.partial_count == partials_when_canceled, "a partial image was recorded after the cancel"
    assert generation.images.count() == 0
    assert refunds_of(generation) == [generation.cost]
    alice.refresh_from_db()
    assert alice.credits == 1000
    # The partial drawn after the cancel was stored, refused by _update, and deleted.
    assert [name for name in deleted_files if name.startswith(f"partials/{generation.pk}")]
    assert all(not default_storage.exists(name) for name in deleted_files)
    assert attempt_outcomes(caplog, generation) == ["canceled"]
    assert any("was stopped while running" in record.getMessage() for record in caplog.records)


def test_a_result_that_arrives_after_the_cancel_is_discarded_and_its_files_deleted(
    slow_worker, finished, alice, caplog, deleted_files, settings
):
    caplog.set_level(logging.INFO, logger="studio.engine.runner")
    settings.LOCAL_PROVIDER_STEP_SECONDS = 1.0
    membership = personal_membership(alice)
    # No partial images: the only event is the final result, a second after the start.
    generation = generation_submit(
        membership=membership, spec=GenerationSpec.build(prompt="a slow comet", n=2, partial_images=0)
    )
    wait_until(generation, lambda g: g.attempts == 1, what="the first attempt")

    assert generation_cancel(generation, membership=membership)
    generation = finished.wait(generation)

    assert generation.status == Status.CANCELED and generation.finished_at is not None
    assert generation.images.count() == 0 and generation.result_size == ""
    assert refunds_of(generation) == [generation.cost]
    stored = [name for name in deleted_files if name.startswith(("images/", "thumbnails/"))]
    assert len(stored) == 4, "two images and two thumbnails should have been written, then deleted"
    assert all(str(generation.pk) in name and not default_storage.exists(name) for name in stored)
    assert attempt_outcomes(caplog, generation) == ["canceled"]


def test_a_generation_canceled_while_queued_is_never_run(settings, finished, alice, monkeypatch):
    calls = []
    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: calls.append(name))
    membership = personal_membership(alice)
    queue = new_queue()
    with tasks_sent_to(queue):  # enqueued, with no worker on the queue yet
        generation = generation_submit(membership=membership, spec=GenerationSpec.build(prompt="never mind"))
    assert generation_cancel(generation, membership=membership)

    with worker_in_process(queue):
        generation = finished.wait(generation)

    assert generation.status == Status.CANCELED
    assert generation.started_at is None and generation.attempts == 0 and calls == []
    assert refunds_of(generation) == [generation.cost]
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_canceling_twice_refunds_once(slow_worker, finished, alice):
    membership = personal_membership(alice)
    generation = generation_submit(membership=membership, spec=GenerationSpec.build(prompt="a slow comet"))
    wait_until(generation, lambda g: g.status == Status.RUNNING, what="running")

    assert generation_cancel(generation, membership=membership)
    assert not generation_cancel(generation, membership=membership)
    generation = finished.wait(generation)

    assert generation.status == Status.CANCELED
    assert refunds_of(generation) == [generation.cost]


def test_after_a_cancel_every_write_of_the_runner_raises_canceled_and_changes_nothing(alice):
    membership = personal_membership(alice)
    queue = new_queue()
    with tasks_sent_to(queue):  # no worker: this test plays the runner itself
        generation = generation_submit(membership=membership, spec=GenerationSpec.build(prompt="a comet"))
    discard_queue(queue)
    assert runner._claim(generation) == "claimed"
    runners_view = Generation.objects.get(pk=generation.pk)
    assert generation_cancel(generation, membership=membership)
    seq = Generation.objects.get(pk=generation.pk).seq

    with pytest.raises(runner.Canceled):
        runner._update(runners_view, stage="Drawing")
    result = Completed(images=[FinalImage(data=png_bytes((64, 64)))], size="64x64")
    with pytest.raises(runner.Canceled):
        runner._complete(runners_view, result, runner._check(result), latency=1.0)
    with pytest.raises(runner.Canceled):
        runner._fail(runners_view, message="Too late.", code="server_error")

    generation.refresh_from_db()
    assert (generation.status, generation.seq, generation.error) == (Status.CANCELED, seq, "")
    assert generation.images.count() == 0
    assert refunds_of(generation) == [generation.cost]
