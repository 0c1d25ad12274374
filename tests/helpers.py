"""Builders shared by the studio tests."""

from django.core.files.base import ContentFile

from studio.engine.images import thumbnail
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Image, Status
from tests.conftest import png_bytes


def personal_membership(user):
    return user.memberships.select_related("workspace", "user").get(workspace__is_personal=True)


def finish(generation: Generation, color=(200, 30, 30, 255)) -> tuple[Generation, Image]:
    """Store one small image for a queued generation and mark it succeeded, without running a worker."""
    data = png_bytes((64, 48), color)
    image = Image(
        generation=generation,
        workspace=generation.workspace,
        width=64,
        height=48,
        format="png",
        bytes=len(data),
    )
    image.file.save(f"{generation.pk}.png", ContentFile(data), save=False)
    image.thumbnail.save(f"{generation.pk}.webp", ContentFile(thumbnail(data)), save=False)
    image.save()
    generation.transition(from_statuses=(Status.QUEUED,), to=Status.RUNNING)
    generation.transition(from_statuses=(Status.RUNNING,), to=Status.SUCCEEDED)
    return generation, image


def finished_generation(membership, prompt: str = "a red square") -> tuple[Generation, Image]:
    """A succeeded generation with one stored image, without running a worker."""
    return finish(generation_submit(membership=membership, spec=GenerationSpec.build(prompt=prompt)))


def attempt_lines(caplog, generation: Generation) -> list[dict]:
    """The structured lines (config.logs) the runner logged for the generation's upstream attempts."""
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict)
        and record.msg.get("event") == "generation_attempt"
        and record.msg.get("generation") == str(generation.pk)
    ]
