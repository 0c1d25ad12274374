import pytest
from asgiref.sync import async_to_sync, sync_to_async

from accounts import ledger
from accounts.models import EntryKind
from studio.engine.events import publish_generation_changed
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status
from tests.helpers import personal_membership
from tests.websocket import communicator_for, receive_all, session_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_memory_channel_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("studio.engine.queue.run_generation", lambda generation_id: None)


def test_an_anonymous_socket_is_refused(db):
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    async def scenario():
        communicator = WebsocketCommunicator(
            application, "/ws/studio/?workspace=1", headers=[(b"origin", b"http://127.0.0.1")]
        )
        connected, _ = await communicator.connect()
        return connected

    assert async_to_sync(scenario)() is False


def test_a_stranger_cannot_listen_to_a_workspace(alice, bob):
    workspace_id = personal_membership(alice).workspace_id
    headers = session_headers(bob)

    async def scenario():
        communicator = communicator_for(headers, workspace_id)
        connected, code = await communicator.connect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 4404)


def test_a_member_receives_the_rendered_card_as_an_out_of_band_swap(alice):
    membership = personal_membership(alice)
    headers = session_headers(alice)

    async def scenario():
        communicator = communicator_for(headers, membership.workspace_id)
        connected, _ = await communicator.connect()
        assert connected
        generation = await sync_to_async(generation_submit)(
            membership=membership, spec=GenerationSpec.build(prompt="a heron")
        )
        await sync_to_async(generation.transition)(
            from_statuses=(Status.QUEUED,), to=Status.RUNNING, stage="Drawing"
        )
        await sync_to_async(publish_generation_changed)(generation)
        messages = await receive_all(communicator)
        await communicator.disconnect()
        return generation, messages

    generation, messages = async_to_sync(scenario)()
    cards = [message for message in messages if f'id="generation-{generation.pk}"' in message]
    assert cards, messages
    assert 'hx-swap-oob="true"' in cards[-1]
    assert "Running" in cards[-1] and "Drawing" in cards[-1]
    # The spend also moved the header balance, live.
    assert any('id="balance"' in message and "900 credits" in message for message in messages)


def test_a_stale_or_repeated_message_is_not_sent_twice(alice):
    membership = personal_membership(alice)
    headers = session_headers(alice)

    async def scenario():
        communicator = communicator_for(headers, membership.workspace_id)
        await communicator.connect()
        generation = await sync_to_async(generation_submit)(
            membership=membership, spec=GenerationSpec.build(prompt="x")
        )
        await receive_all(communicator)
        # The same change arrives through the workspace, generation and user groups: one card is sent.
        await sync_to_async(publish_generation_changed)(generation)
        messages = await receive_all(communicator)
        await communicator.disconnect()
        return messages

    assert async_to_sync(scenario)() == []


def test_a_generation_of_another_workspace_is_not_sent(alice, team):
    membership = personal_membership(team["editor"])
    headers = session_headers(team["editor"])

    async def scenario():
        communicator = communicator_for(headers, team["workspace"].pk)
        await communicator.connect()
        await sync_to_async(generation_submit)(
            membership=membership, spec=GenerationSpec.build(prompt="private")
        )
        messages = await receive_all(communicator)
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()
    assert not any("generation-" in message for message in messages)
    assert Generation.objects.count() == 1


def test_a_refund_updates_the_balance_live(alice):
    membership = personal_membership(alice)
    headers = session_headers(alice)

    async def scenario():
        communicator = communicator_for(headers, membership.workspace_id)
        await communicator.connect()
        await sync_to_async(ledger.adjust)(user=alice, amount=250, kind=EntryKind.GRANT, reason="Thanks")
        messages = await receive_all(communicator)
        await communicator.disconnect()
        return messages

    assert any("1,250 credits" in message for message in async_to_sync(scenario)())
