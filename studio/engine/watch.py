"""Follow a generation from the web process: the worker does the work, the web process only relays.

Woken by the worker's "generation changed" messages on the channel layer, and re-reading the database each
time (and every few seconds anyway), so a lost message only delays, never loses, an update.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from uuid import UUID

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from studio.engine.events import generation_group
from studio.models import Generation

logger = logging.getLogger(__name__)
POLL_SECONDS = 2.0


def _load(generation_id: UUID | str) -> Generation:
    """The generation with its images (prefetched: read later without a query, or a connection)."""
    try:
        generation = Generation.objects.prefetch_related("images").get(pk=generation_id)
        list(generation.images.all())
        return generation
    finally:
        # A relay may wait minutes between reads: hold no connection meanwhile.
        connection.close()


async def watch(
    generation_id: UUID | str, *, poll_seconds: float = POLL_SECONDS
) -> AsyncIterator[Generation]:
    """Yield the generation each time it changes, until it is finished (the last one yielded)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = generation_group(generation_id)
    await layer.group_add(group, channel)
    try:
        last_seq = None
        while True:
            generation = await sync_to_async(_load, thread_sensitive=False)(generation_id)
            if generation.seq != last_seq:
                last_seq = generation.seq
                yield generation
            if not generation.is_active:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(layer.receive(channel), timeout=poll_seconds)
    finally:
        try:
            await layer.group_discard(group, channel)
        except Exception:
            logger.warning("could not leave %s", group, exc_info=True)
