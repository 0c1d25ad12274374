"""studio.engine.watch: woken by live updates, and re-reading the database after a silence that grows."""

import asyncio

import pytest
from asgiref.sync import async_to_sync

from studio.engine import watch as watch_module
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status
from tests.helpers import personal_membership

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("studio.engine.queue.run_generation", lambda generation_id: None)


def test_a_change_nobody_announced_is_seen_by_reading_again_and_reads_grow_apart(alice, monkeypatch):
    generation = generation_submit(
        membership=personal_membership(alice), spec=GenerationSpec.build(prompt="a")
    )
    reads = []
    load = watch_module._load

    def counted(generation_id):
        reads.append(generation_id)
        return load(generation_id)

    monkeypatch.setattr(watch_module, "_load", counted)

    async def follow():
        seen = []
        async for current in watch_module.watch(generation.pk, poll_seconds=0.05, max_poll_seconds=0.4):
            seen.append(current.status)
        return seen

    async def scenario():
        task = asyncio.ensure_future(follow())
        await asyncio.sleep(1.5)  # silent: no message is sent for what follows
        silent_reads = len(reads)
        await asyncio.to_thread(
            lambda: Generation.objects.filter(pk=generation.pk).update(status=Status.CANCELED, seq=99)
        )
        seen = await asyncio.wait_for(task, timeout=5)
        return silent_reads, seen

    silent_reads, seen = async_to_sync(scenario)()
    assert seen == [Status.QUEUED, Status.CANCELED]
    # At a fixed 0.05 s the watcher would have read ~30 times in 1.5 s; growing to 0.4 s, under ten.
    assert 3 <= silent_reads <= 9
