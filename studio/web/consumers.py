"""The page's websocket: sends the viewer fresh HTML for whatever changed in their workspace."""

from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer
from django.template.loader import render_to_string

from accounts.events import user_group
from accounts.models import Membership
from studio.engine.events import workspace_group
from studio.models import Generation


class StudioConsumer(WebsocketConsumer):
    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=4401)
            return
        workspace_id = parse_qs(self.scope.get("query_string", b"").decode()).get("workspace", [""])[0]
        membership = None
        if workspace_id.isdigit():
            membership = (
                Membership.objects.select_related("workspace")
                .filter(user=user, workspace_id=workspace_id)
                .first()
            )
        if membership is None:
            self.close(code=4404)
            return
        self.user = user
        self.workspace_id = membership.workspace_id
        self.subscriptions = [workspace_group(self.workspace_id), user_group(user.pk)]
        self.latest_seq: dict[str, int] = {}
        for group in self.subscriptions:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.accept()

    def disconnect(self, code: int) -> None:
        for group in getattr(self, "subscriptions", []):
            async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The page only listens.
        return

    def generation_changed(self, event: dict) -> None:
        generation_id = event["id"]
        if self.latest_seq.get(generation_id, -1) >= event.get("seq", 0):
            return  # the same change came through another group, or an older one arrived late
        # Re-check access on every message: membership may have changed since connect.
        membership = Membership.objects.filter(user=self.user, workspace_id=self.workspace_id).first()
        generation = (
            Generation.objects.filter(pk=generation_id, workspace_id=self.workspace_id)
            .select_related("author", "project")
            .prefetch_related("images")
            .first()
        )
        if membership is None or generation is None:
            return
        self.latest_seq[generation_id] = generation.seq
        html = render_to_string(
            "studio/home.html#generation-card",
            {"generation": generation, "membership": membership, "user": self.user, "oob": True},
        )
        self.send(text_data=html)

    def balance_changed(self, event: dict) -> None:
        self.user.refresh_from_db(fields=["credits"])
        self.send(text_data=render_to_string("includes/balance.html", {"user": self.user, "oob": True}))
