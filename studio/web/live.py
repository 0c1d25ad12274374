"""Live cards for every viewer of a workspace in this web process: rendered once per change, not per viewer.

A web process subscribes once to a workspace's group, however many of its pages are open here (one channel
per process in the group, instead of one per viewer: a change is one message per process on the channel
layer). The changes that arrive within `COALESCE_SECONDS` are loaded in one query and each card is rendered
at most twice: with the Cancel button (for its author and the workspace's owners) and without (for everyone
else). Each viewer then gets one websocket message holding every changed card, as out-of-band swaps.

Access is checked at every send, for all the viewers at once: a viewer whose membership has ended gets
nothing more and is disconnected.

Measured by `benches/fanout.py` (docs/benchmarks.md): per-viewer rendering was two queries and a template per
viewer per change, 50,000 renders a second for 1,000 viewers at 50 changes a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from accounts.models import Membership, Role
from studio.engine.events import workspace_group
from studio.models import Generation, Status

logger = logging.getLogger(__name__)

# How long changes gather before one render and one message per viewer. Bounds a change's delay on the page
# (plus the render and the sends); at 50 changes a second, 1,000 viewers get 4 messages a second each, not 50.
COALESCE_SECONDS = 0.25
# The group's membership on the channel layer expires (channels_redis: a day); a live feed renews it.
GROUP_RENEW_SECONDS = 3600.0
# Generations whose last sent seq is remembered, to drop stale or repeated messages; the oldest are forgotten
# (a late message about a forgotten one renders its current state again, which is harmless).
REMEMBERED_GENERATIONS = 10_000


class Viewer(Protocol):
    """A page's websocket (studio.web.consumers.StudioConsumer)."""

    user_id: int
    view: str  # "home" (the cards) or "gallery" (the tiles)

    async def send_cards(self, html: str) -> None: ...

    async def end_access(self) -> None: ...


@dataclass(frozen=True)
class Card:
    """One changed generation, rendered for the viewers who may cancel it and for everyone else."""

    generation_id: str
    seq: int
    author_id: int
    html: str
    html_with_cancel: str
    tiles: str = ""  # the gallery's tiles of its images, once it has succeeded

    def for_viewer(self, user_id: int, role: str) -> str:
        if user_id == self.author_id or role == Role.OWNER:
            return self.html_with_cancel
        return self.html


def render_cards(workspace_id: int, generation_ids: list[str]) -> list[Card]:
    """The cards of these generations (of this workspace only)."""
    generations = (
        Generation.objects.filter(pk__in=generation_ids, workspace_id=workspace_id)
        .select_related("author", "project")
        .prefetch_related("images")
    )
    cards = []
    for generation in generations:
        # The card asks its viewer's membership one thing: may they cancel (the author or an owner)?
        anyone = Membership(workspace_id=workspace_id, user_id=0, role=Role.VIEWER)  # no user is 0
        html = _render(generation, anyone)
        if generation.is_active:
            author = Membership(workspace_id=workspace_id, user_id=generation.author_id, role=Role.EDITOR)
            html_with_cancel = _render(generation, author)
        else:
            html_with_cancel = html
        cards.append(
            Card(
                generation_id=str(generation.pk),
                seq=generation.seq,
                author_id=generation.author_id,
                html=html,
                html_with_cancel=html_with_cancel,
                tiles=_tiles(generation, anyone) if generation.status == Status.SUCCEEDED else "",
            )
        )
    return cards


def _tiles(generation: Generation, membership: Membership) -> str:
    """Its images as gallery tiles (nobody has starred a new image yet: one rendering serves everyone)."""
    tiles = []
    for image in generation.images.all():
        image.is_favourite = False  # type: ignore[attr-defined]  # the gallery's annotation
        context = {"image": image, "generation": generation, "membership": membership}
        tiles.append(render_to_string("studio/gallery.html#image-tile", context))
    return "".join(tiles)


def _render(generation: Generation, membership: Membership) -> str:
    return render_to_string(
        "studio/home.html#generation-card", {"generation": generation, "membership": membership, "oob": True}
    )


def current_roles(workspace_id: int, user_ids: set[int]) -> dict[int, str]:
    return dict(
        Membership.objects.filter(workspace_id=workspace_id, user_id__in=user_ids).values_list(
            "user_id", "role"
        )
    )


def _load(
    workspace_id: int, generation_ids: list[str], user_ids: set[int]
) -> tuple[list[Card], dict[int, str]]:
    return render_cards(workspace_id, generation_ids), current_roles(workspace_id, user_ids)


class WorkspaceFeed:
    """The changes of one workspace, for this process's viewers of it (on one event loop)."""

    def __init__(self, workspace_id: int, layer: Any) -> None:
        self.workspace_id = workspace_id
        self.group = workspace_group(workspace_id)
        self.layer = layer
        self.viewers: dict[Viewer, None] = {}  # insertion-ordered set
        self.pending: dict[str, int] = {}
        self.removed: set[str] = set()  # element ids to take off the pages: "tile-<image>", "generation-<id>"
        self.sent: OrderedDict[str, int] = OrderedDict()
        self.channel = ""
        self.listener: asyncio.Task | None = None
        self.flusher: asyncio.Task | None = None
        self.sending = asyncio.Lock()

    async def start(self) -> None:
        # The default prefix: channels_redis receives all of a process's specific channels through one list.
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self.listener = asyncio.create_task(self.listen(), name=f"live feed {self.group}")

    async def stop(self) -> None:
        for task in (self.listener, self.flusher):
            if task is not None:
                task.cancel()
        try:
            await self.layer.group_discard(self.group, self.channel)
        except Exception:
            logger.warning("could not leave %s", self.group, exc_info=True)

    async def listen(self) -> None:
        renewed = time.monotonic()
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("live feed of %s could not receive; retrying", self.group, exc_info=True)
                await asyncio.sleep(1)
                continue
            if time.monotonic() - renewed > GROUP_RENEW_SECONDS:
                await self.layer.group_add(self.group, self.channel)
                renewed = time.monotonic()
            if message.get("type") == "items.removed":
                self.removed.update(f"tile-{image}" for image in message.get("images", []))
                self.removed.update(f"generation-{gid}" for gid in message.get("generations", []))
                self.removed.update(f"tile-{gid}" for gid in message.get("generations", []))
                if self.flusher is None:
                    self.flusher = asyncio.create_task(self.flush_soon())
                continue
            if message.get("type") != "generation.changed":
                continue
            generation_id, seq = str(message["id"]), int(message.get("seq", 0))
            if seq <= self.sent.get(generation_id, -1) or seq <= self.pending.get(generation_id, -1):
                continue  # the same change twice, or an older one arriving late
            self.pending[generation_id] = seq
            if self.flusher is None:
                self.flusher = asyncio.create_task(self.flush_soon())

    async def flush_soon(self) -> None:
        await asyncio.sleep(COALESCE_SECONDS)
        async with self.sending:
            # Changes arriving from here on start the next round (sent after this one: the lock).
            changed, self.pending, self.flusher = self.pending, {}, None
            removed, self.removed = sorted(self.removed), set()
            viewers = list(self.viewers)
            if not viewers:
                return
            try:
                cards, roles = await database_sync_to_async(_load)(
                    self.workspace_id, list(changed), {viewer.user_id for viewer in viewers}
                )
            except Exception:
                logger.warning("live feed of %s could not load %s", self.group, list(changed), exc_info=True)
                return
            cards = [card for card in cards if self._fresh(card.generation_id, card.seq)]
            if not cards and not removed:
                return
            tiles = "".join(card.tiles for card in cards)
            # Removals go to a hidden holder every live page has; its script takes the named elements off
            # the page (an out-of-band "delete" of an element a page does not show would be an error there).
            removals = (
                f'<div id="live-removed" hx-swap-oob="true" hidden data-remove="{" ".join(removed)}"></div>'
                if removed
                else ""
            )
            for viewer in viewers:
                role = roles.get(viewer.user_id)
                try:
                    if role is None:
                        await viewer.end_access()
                    elif viewer.view == "gallery":
                        if tiles or removals:
                            holder = (
                                f'<ul id="live-tiles" hx-swap-oob="true" hidden>{tiles}</ul>' if tiles else ""
                            )
                            await viewer.send_cards(holder + removals)
                    else:
                        html = "".join(card.for_viewer(viewer.user_id, role) for card in cards)
                        if html or removals:
                            await viewer.send_cards(html + removals)
                except Exception:  # one viewer's closed socket must not cost the others their update
                    logger.debug("could not send to a viewer of %s", self.group, exc_info=True)

    def _fresh(self, generation_id: str, seq: int) -> bool:
        """Whether this render is newer than the last one sent (and remember it)."""
        if seq <= self.sent.get(generation_id, -1):
            return False
        self.sent[generation_id] = seq
        self.sent.move_to_end(generation_id)
        while len(self.sent) > REMEMBERED_GENERATIONS:
            self.sent.popitem(last=False)
        return True


# Feeds by event loop (one for the server; tests may run several) and workspace.
_feeds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, WorkspaceFeed]] = (
    weakref.WeakKeyDictionary()
)
_feeds_lock: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    if loop not in _feeds_lock:
        _feeds_lock[loop] = asyncio.Lock()
    return _feeds_lock[loop]


async def join(viewer: Viewer, workspace_id: int, layer: Any) -> None:
    """Send this viewer its workspace's changes (subscribing this process to them for the first viewer)."""
    async with _lock():
        feeds = _feeds.setdefault(asyncio.get_running_loop(), {})
        feed = feeds.get(workspace_id)
        if feed is None:
            feed = WorkspaceFeed(workspace_id, layer)
            await feed.start()
            feeds[workspace_id] = feed
        feed.viewers[viewer] = None


async def leave(viewer: Viewer, workspace_id: int) -> None:
    """Stop sending to this viewer (and unsubscribe this process from the workspace if it was the last)."""
    async with _lock():
        feeds = _feeds.get(asyncio.get_running_loop(), {})
        feed = feeds.get(workspace_id)
        if feed is None:
            return
        feed.viewers.pop(viewer, None)
        if not feed.viewers:
            del feeds[workspace_id]
            await feed.stop()


def feed_of(workspace_id: int) -> WorkspaceFeed | None:
    """This loop's feed of a workspace (for tests and introspection)."""
    return _feeds.get(asyncio.get_running_loop(), {}).get(workspace_id)
