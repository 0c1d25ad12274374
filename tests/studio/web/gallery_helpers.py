"""Helpers of the gallery, image and bulk tests."""

import re

from accounts.middleware import SESSION_KEY
from studio.models import Generation, Image, Status
from tests.helpers import finished_generation

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
HTMX = {"HX-Request": "true"}


def log_in(client, user, workspace=None):
    """Log in, working in `workspace` (the user's personal one if None)."""
    client.force_login(user)
    if workspace is not None:
        session = client.session
        session[SESSION_KEY] = workspace.pk
        session.save()


def tiles(html: str) -> list[str]:
    """The image ids shown as tiles, in order."""
    return re.findall(rf'id="tile-({UUID})"', html)


def many_images(membership, count: int, *, prompt: str = "harbour study") -> list[Image]:
    """`count` succeeded generations with one image each, made in bulk (no credits, no files of their own:
    they share the files of one real image)."""
    _, model = finished_generation(membership, prompt=f"{prompt} model")
    generations = Generation.objects.bulk_create(
        Generation(
            workspace=membership.workspace,
            project=model.generation.project,
            author=membership.user,
            prompt=f"{prompt} {number}",
            spec=model.generation.spec,
            provider="local",
            cost=100,
            status=Status.SUCCEEDED,
        )
        for number in range(count - 1)
    )
    images = Image.objects.bulk_create(
        Image(
            generation=generation,
            workspace=membership.workspace,
            file=model.file.name,
            thumbnail=model.thumbnail.name,
            width=model.width,
            height=model.height,
            format=model.format,
            bytes=model.bytes,
        )
        for generation in generations
    )
    return [model, *images]
