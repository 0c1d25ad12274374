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
def quick_live_feed(monkeypatch):
    """Changes gather for 50 ms instead of 250: the tests wait for quiet, and a loaded machine is slow."""
    monkeypatch.setattr("studio.web.live.COALESCE_SECONDS", 0.05)


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


def test_one_subscription_per_process_and_one_render_per_variant(team):
    """Three viewers of a team workspace: the process joins the workspace's group once; the author and the
    owner get the card with Cancel, the viewer without; each gets it in one message."""
    from channels.layers import get_channel_layer

    from studio.engine.events import workspace_group

    workspace = team["workspace"]
    people = ("owner", "editor", "viewer")
    headers = {name: session_headers(team[name]) for name in people}

    async def scenario():
        communicators = {name: communicator_for(headers[name], workspace.pk) for name in people}
        for communicator in communicators.values():
            assert (await communicator.connect())[0]
        members_of_group = len(get_channel_layer().groups[workspace_group(workspace.pk)])
        generation = await sync_to_async(generation_submit)(
            membership=team["memberships"]["editor"], spec=GenerationSpec.build(prompt="a shared heron")
        )
        received = {name: await receive_all(communicator) for name, communicator in communicators.items()}
        for communicator in communicators.values():
            await communicator.disconnect()
        return generation, members_of_group, received

    generation, members_of_group, received = async_to_sync(scenario)()
    assert members_of_group == 1
    card_id = f'id="generation-{generation.pk}"'
    for name in people:
        cards = [message for message in received[name] if card_id in message]
        assert len(cards) == 1, (name, received[name])
        assert ("Cancel" in cards[0]) is (name != "viewer"), (name, cards[0])


def test_changes_within_the_window_arrive_together_at_their_latest_state(alice, monkeypatch):
    monkeypatch.setattr("studio.web.live.COALESCE_SECONDS", 1.5)  # room for three writes on a slow machine
    membership = personal_membership(alice)
    headers = session_headers(alice)

    async def scenario():
        communicator = communicator_for(headers, membership.workspace_id)
        await communicator.connect()
        first, second = [
            await sync_to_async(generation_submit)(membership=membership, spec=GenerationSpec.build(prompt=p))
            for p in ("first", "second")
        ]
        await sync_to_async(first.transition)(
            from_statuses=(Status.QUEUED,), to=Status.RUNNING, stage="Drawing"
        )
        await sync_to_async(publish_generation_changed)(first)
        messages = await receive_all(communicator, quiet_for=2.5)
        await communicator.disconnect()
        return first, second, messages

    first, second, messages = async_to_sync(scenario)()
    cards = [message for message in messages if "generation-" in message]
    assert len(cards) == 1, messages
    assert f'id="generation-{first.pk}"' in cards[0] and f'id="generation-{second.pk}"' in cards[0]
    assert "Drawing" in cards[0]


def test_a_viewer_whose_membership_ended_is_disconnected_and_sent_nothing(team):
    workspace = team["workspace"]
    owner_headers, viewer_headers = session_headers(team["owner"]), session_headers(team["viewer"])

    async def scenario():
        owner = communicator_for(owner_headers, workspace.pk)
        viewer = communicator_for(viewer_headers, workspace.pk)
        await owner.connect()
        await viewer.connect()
        await sync_to_async(team["memberships"]["viewer"].delete)()
        await sync_to_async(generation_submit)(
            membership=team["memberships"]["owner"], spec=GenerationSpec.build(prompt="members only")
        )
        owner_messages = await receive_all(owner)
        viewer_output = await viewer.receive_output(timeout=2)
        await owner.disconnect()
        return owner_messages, viewer_output

    owner_messages, viewer_output = async_to_sync(scenario)()
    assert any("members only" in message for message in owner_messages)
    assert viewer_output == {"type": "websocket.close", "code": 4403}


def test_the_last_viewer_leaving_unsubscribes_the_process(alice):
    from channels.layers import get_channel_layer

    from studio.engine.events import workspace_group

    membership = personal_membership(alice)
    headers = session_headers(alice)

    async def scenario():
        communicator = communicator_for(headers, membership.workspace_id)
        await communicator.connect()
        joined = dict(get_channel_layer().groups.get(workspace_group(membership.workspace_id), {}))
        await communicator.disconnect()
        left = dict(get_channel_layer().groups.get(workspace_group(membership.workspace_id), {}))
        return joined, left

    joined, left = async_to_sync(scenario)()
    assert len(joined) == 1 and left == {}


def test_open_websockets_are_counted_for_the_metrics(alice):
    from prometheus_client import REGISTRY

    membership = personal_membership(alice)
    headers = session_headers(alice)

    def open_sockets() -> float:
        return REGISTRY.get_sample_value("studio_websocket_connections") or 0

    async def scenario():
        before = open_sockets()
        communicators = [communicator_for(headers, membership.workspace_id) for _ in range(3)]
        for communicator in communicators:
            await communicator.connect()
        during = open_sockets()
        for communicator in communicators:
            await communicator.disconnect()
        return before, during, open_sockets()

    before, during, after = async_to_sync(scenario)()
    assert during == before + 3 and after == before


def gallery_communicator(headers, workspace_id):
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    return WebsocketCommunicator(
        application, f"/ws/studio/?workspace={workspace_id}&view=gallery", headers=headers
    )


def test_the_gallery_gets_new_tiles_and_every_page_loses_what_was_deleted(team):
    """A gallery page gets a succeeded generation's tiles (not its card); after a delete, the gallery and the
    home page both get the ids to take off, the emptied generation's card among them."""
    from studio.engine.services import images_delete
    from tests.helpers import finished_generation

    workspace = team["workspace"]
    owner_headers, viewer_headers = session_headers(team["owner"]), session_headers(team["viewer"])

    async def scenario():
        gallery = gallery_communicator(viewer_headers, workspace.pk)
        home = communicator_for(owner_headers, workspace.pk)
        assert (await gallery.connect())[0] and (await home.connect())[0]
        generation, image = await sync_to_async(finished_generation)(
            team["memberships"]["owner"], "a new tile"
        )
        await sync_to_async(publish_generation_changed)(generation)
        made = (await receive_all(gallery), await receive_all(home))
        await sync_to_async(images_delete)(membership=team["memberships"]["owner"], images=[image])
        deleted = (await receive_all(gallery), await receive_all(home))
        await gallery.disconnect()
        await home.disconnect()
        return generation, image, made, deleted

    generation, image, (gallery_made, home_made), (gallery_deleted, home_deleted) = async_to_sync(scenario)()
    tiles = [message for message in gallery_made if 'id="live-tiles"' in message]
    assert tiles and f'id="tile-{image.pk}"' in tiles[-1] and "a new tile" in tiles[-1]
    assert not any("<article" in message for message in gallery_made)  # tiles, not cards
    assert any(f'id="generation-{generation.pk}"' in message for message in home_made)
    assert not any('id="live-tiles"' in message for message in home_made)
    for messages in (gallery_deleted, home_deleted):
        [removal] = [message for message in messages if 'id="live-removed"' in message]
        assert f"tile-{image.pk}" in removal and f"generation-{generation.pk}" in removal
