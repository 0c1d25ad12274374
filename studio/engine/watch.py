"""Follow a generation from the web process: the worker does the work, the web process only relays.

Woken by the worker's "generation changed" messages on the channel layer, and re-reading the database each
time (and after a silence anyway), so a lost message only delays, never loses, an update. The silence
allowed grows from POLL_SECONDS to MAX_POLL_SECONDS while nothing is heard: a thousand requests waiting
for their images re-reading every 2 s were 500 queries a second, most of the web process's CPU
(benches/submit.py); a message brings it back to POLL_SECONDS.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from uuid import UUID

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from studio.engine.events import generation_group
from studio.models import Generation

logger = logging.getLogger(__name__)
POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 20.0


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
    generation_id: UUID | str,
    *,
    poll_seconds: float = POLL_SECONDS,
    max_poll_seconds: float = MAX_POLL_SECONDS,
) -> AsyncIterator[Generation]:
    """Yield the generation each time it changes, until it is finished (the last one yielded)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = generation_group(generation_id)
    await layer.group_add(group, channel)
    try:
        last_seq = None
        silence = poll_seconds
        while True:
            generation = await sync_to_async(_load, thread_sensitive=False)(generation_id)
            if generation.seq != last_seq:
                last_seq = generation.seq
                yield generation
            if not generation.is_active:
                return
            try:
                await asyncio.wait_for(layer.receive(channel), timeout=silence)
                silence = poll_seconds
            except TimeoutError:
                # Longer each time nothing is heard; a little apart per watcher, so they do not read at once.
                silence = min(silence * 2, max_poll_seconds) * random.uniform(0.9, 1.1)
    finally:
        try:
            await layer.group_discard(group, channel)
        except Exception:
            logger.warning("could not leave %s", group, exc_info=True)
