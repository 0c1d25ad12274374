"""The page's websocket: sends the viewer fresh HTML for whatever changed in their workspace.

Generation cards come from the process's live feed of the workspace (studio.web.live: rendered once per
change for all of this process's viewers); the header balance from the viewer's own group."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from accounts.events import user_group
from accounts.models import Membership
from studio.engine.metrics import OPEN_SOCKETS
from studio.web import live

# Close codes the page's script knows (4401: log in again; 4403: access ended; 4404: no such workspace).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_ACCESS_ENDED = 4403
CLOSE_NOT_A_MEMBER = 4404


class StudioConsumer(AsyncWebsocketConsumer):
    user_id: int
    workspace_id: int | None = None
    view = "home"  # or "gallery": what the page shows, cards or tiles (?view=)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        workspace_id = query.get("workspace", [""])[0]
        self.view = "gallery" if query.get("view", [""])[0] == "gallery" else "home"
        is_member = (
            workspace_id.isdigit()
            and await database_sync_to_async(
                Membership.objects.filter(user=user, workspace_id=workspace_id).exists
            )()
        )
        if not is_member:
            await self.close(code=CLOSE_NOT_A_MEMBER)
            return
        self.user = user
        self.user_id = user.pk
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        await self.accept()
        OPEN_SOCKETS.inc()
        self.workspace_id = int(workspace_id)
        await live.join(self, self.workspace_id, self.channel_layer)

    async def disconnect(self, code: int) -> None:
        if self.workspace_id is not None:
            OPEN_SOCKETS.dec()
            await live.leave(self, self.workspace_id)
            self.workspace_id = None
        if getattr(self, "user", None) is not None:
            await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The page only listens.
        return

    # Called by the workspace's live feed.
    async def send_cards(self, html: str) -> None:
        await self.send(text_data=html)

    async def end_access(self) -> None:
        await self.close(code=CLOSE_ACCESS_ENDED)

    async def balance_changed(self, event: dict) -> None:
        await database_sync_to_async(self.user.refresh_from_db)(fields=["credits"])
        await self.send(text_data=render_to_string("includes/balance.html", {"user": self.user, "oob": True}))
