"""Tell a user's open pages that their balance changed."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def publish_balance_changed(user_id: int) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "balance.changed"})
    except Exception:
        # A live update is a convenience; the page shows the truth on the next load.
        logger.warning("could not publish balance change for user %s", user_id, exc_info=True)
