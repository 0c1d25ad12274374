"""Live updates sent from a worker's threads, through a loop of the process's own (events.start_publisher)."""

import asyncio
import threading
import uuid
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from studio.engine import events


@pytest.fixture
def publisher(monkeypatch):
    monkeypatch.setattr(events, "_publisher", None)
    events.start_publisher()
    yield events._publisher


def test_changes_published_from_many_threads_all_arrive_in_order_per_thread(publisher):
    layer = get_channel_layer()
    workspace_id = uuid.uuid4().int % 10**9
    generations = [
        SimpleNamespace(pk=uuid.uuid4(), seq=0, workspace_id=workspace_id, author_id=1) for _ in range(8)
    ]

    async def listen() -> list[dict]:
        channel = await layer.new_channel()
        await layer.group_add(events.workspace_group(workspace_id), channel)
        ready.set()
        received = []
        try:
            while len(received) < 8 * 5:
                received.append(await asyncio.wait_for(layer.receive(channel), timeout=10))
        finally:
            await layer.group_discard(events.workspace_group(workspace_id), channel)
        return received

    ready = threading.Event()
    outcome: list[list[dict]] = []
    listener = threading.Thread(target=lambda: outcome.append(async_to_sync(listen)()))
    listener.start()
    assert ready.wait(10)

    def publish(generation: SimpleNamespace) -> None:
        for seq in range(1, 6):
            generation.seq = seq
            events.publish_generation_changed(generation)

    threads = [threading.Thread(target=publish, args=(generation,)) for generation in generations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    listener.join(20)

    received = outcome[0]
    for generation in generations:
        seqs = [message["seq"] for message in received if message["id"] == str(generation.pk)]
        assert seqs == [1, 2, 3, 4, 5]
    # One loop, in one thread, for every send of the process.
    assert publisher.thread.is_alive() and publisher.thread.name == "live-updates"


def test_a_send_that_hangs_is_given_up_and_never_raises(publisher, monkeypatch, caplog):
    monkeypatch.setattr(events, "PUBLISH_TIMEOUT_SECONDS", 0.2)

    class Stuck:
        async def group_send(self, group, message):
            await asyncio.sleep(30)

    monkeypatch.setattr(events, "get_channel_layer", lambda: Stuck())
    generation = SimpleNamespace(pk=uuid.uuid4(), seq=1, workspace_id=1, author_id=1)
    events.publish_generation_changed(generation)
    assert "timed out" in caplog.text
