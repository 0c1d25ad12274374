"""What the worker tells the pages. Only small "generation N changed" messages: the consumer holding the
viewer's session re-reads the database and renders the card, so no HTML is made here."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.events import user_group
from studio.models import Generation

logger = logging.getLogger(__name__)


def generation_group(generation_id: object) -> str:
    return f"generation.{generation_id}"


def workspace_group(workspace_id: int) -> str:
    return f"workspace.{workspace_id}"


def publish_generation_changed(generation: Generation) -> None:
    """Tell every page that shows this generation to refresh its card. Never raises: the database is the
    truth, and the next message (or a reload) heals a lost one."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "generation.changed", "id": str(generation.pk), "seq": generation.seq}
    groups = (
        generation_group(generation.pk),
        workspace_group(generation.workspace_id),
        user_group(generation.author_id),
    )

    async def send_all() -> None:
        # One event loop for the three sends (async_to_sync per send would make a loop and connection each).
        for group in groups:
            try:
                await layer.group_send(group, message)
            except Exception:
                logger.warning(
                    "could not publish change of generation %s to %s", generation.pk, group, exc_info=True
                )

    async_to_sync(send_all)()
