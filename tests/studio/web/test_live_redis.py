"""The live feed on the channel layer production uses (channels_redis on the suite's Redis): the feed's
channel and the viewers' own share the process's receive list, so both kinds of message arrive."""

import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from accounts import ledger
from accounts.models import EntryKind
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from tests.helpers import personal_membership
from tests.websocket import communicator_for, receive_all, session_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_channel_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"test-live-{uuid.uuid4().hex[:8]}"},
        }
    }


@pytest.fixture(autouse=True)
def quick_live_feed(monkeypatch):
    """Changes gather for 50 ms instead of 250: the tests wait for quiet, and a loaded machine is slow."""
    monkeypatch.setattr("studio.web.live.COALESCE_SECONDS", 0.05)


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("studio.engine.queue.run_generation", lambda generation_id: None)


def test_cards_arrive_over_redis_when_nothing_else_does(team):
    """Viewers who are not the author get no message of their own (no balance change) to wake the process's
    receive loop: the feed's channel must be received by that same loop."""
    workspace = team["workspace"]
    headers = [session_headers(team[name]) for name in ("editor", "viewer")]

    async def scenario():
        communicators = [communicator_for(header, workspace.pk) for header in headers]
        for communicator in communicators:
            assert (await communicator.connect())[0]
        generation = await sync_to_async(generation_submit)(
            membership=team["memberships"]["owner"], spec=GenerationSpec.build(prompt="over redis")
        )
        received = [await receive_all(communicator, quiet_for=2.0) for communicator in communicators]
        for communicator in communicators:
            await communicator.disconnect()
        return generation, received

    generation, received = async_to_sync(scenario)()
    for messages in received:
        assert sum(f'id="generation-{generation.pk}"' in message for message in messages) == 1, messages


def test_the_balance_arrives_over_redis_and_strangers_get_nothing(alice, bob):
    membership = personal_membership(alice)
    alice_headers, bob_headers = session_headers(alice), session_headers(bob)
    bob_workspace_id = personal_membership(bob).workspace_id

    async def scenario():
        mine = communicator_for(alice_headers, membership.workspace_id)
        stranger = communicator_for(bob_headers, bob_workspace_id)
        assert (await mine.connect())[0] and (await stranger.connect())[0]
        await sync_to_async(ledger.adjust)(user=alice, amount=5, kind=EntryKind.GRANT, reason="Thanks")
        received = [await receive_all(communicator, quiet_for=1.0) for communicator in (mine, stranger)]
        for communicator in (mine, stranger):
            await communicator.disconnect()
        return received

    mine, stranger = async_to_sync(scenario)()
    assert any('id="balance"' in message and "1,005 credits" in message for message in mine), mine
    assert stranger == []
