"""Work that spans models: submit, cancel, fail and refund generations; manage projects; move and delete
images. Tasks are sent by name through `studio.engine.queue`, on commit."""

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import ledger
from accounts.models import ApiKey, Membership, User
from studio.engine import pricing, queue
from studio.engine.events import publish_generation_changed, publish_removed
from studio.engine.images import CheckedImage
from studio.engine.spec import GenerationSpec
from studio.models import (
    ACTIVE_STATUSES,
    Generation,
    GenerationInput,
    Image,
    InputRole,
    PriceRule,
    Project,
    Source,
    Status,
    UpstreamAccount,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmittedImage:
    """An input image: checked bytes (and the gallery image they came from, if any), or a public URL that
    the worker fetches before generating."""

    image: CheckedImage | None = None
    source_image: Image | None = None
    url: str = ""


def generation_submit(
    *,
    membership: Membership,
    spec: GenerationSpec,
    project: Project | None = None,
    references: Sequence[SubmittedImage] = (),
    mask: SubmittedImage | None = None,
    idempotency_key: str = "",
    source: str = Source.PAGE,
    provider: str | None = None,
    api_key: ApiKey | None = None,
    callback_url: str = "",
) -> Generation:
    """Create a queued generation and pay for it in one transaction; enqueue its task on commit.

    The same idempotency key twice gives back the first generation and charges once. Raises
    PermissionDenied for viewers and ledger.InsufficientCredits when the balance does not cover the cost.
    """
    if not membership.can_write:
        raise PermissionDenied("Viewers cannot generate in this workspace.")
    user, workspace = membership.user, membership.workspace
    if idempotency_key and (existing := _existing(user, idempotency_key)):
        return existing
    project = project or Project.default_for(workspace)
    if project.workspace_id != workspace.pk:
        raise PermissionDenied("That project belongs to another workspace.")
    if project.is_archived:
        raise PermissionDenied(f"The project {project} is archived. Restore it to add images to it.")
    cost = price_list().cost(spec)
    provider = provider or _default_provider()
    try:
        with transaction.atomic():
            generation = Generation.objects.create(
                workspace=workspace,
                project=project,
                author=user,
                source=source,
                api_key=api_key,
                callback_url=callback_url,
                idempotency_key=idempotency_key,
                prompt=spec.prompt,
                spec=spec.to_dict(),
                provider=provider,
                cost=cost,
            )
            ledger.spend(user=user, amount=cost, reference=generation.ledger_reference, reason="Generation")
            for position, submitted in enumerate(references):
                _store_input(generation, submitted, InputRole.REFERENCE, position)
            if mask is not None:
                _store_input(generation, mask, InputRole.MASK, 0)
            transaction.on_commit(lambda: _enqueue(generation))
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its generation.
        if idempotency_key and (existing := _existing(user, idempotency_key)):
            return existing
        raise
    return generation


def _default_provider() -> str:
    """STUDIO_PROVIDER; but a studio left on the offline engine only because OPENAI_API_KEY is unset draws
    from its upstream accounts once an admin has added one."""
    from django.conf import settings

    chosen = settings.STUDIO_PROVIDER
    if (
        chosen == "local"
        and not settings.STUDIO_PROVIDER_CHOSEN
        and UpstreamAccount.objects.filter(enabled=True).exists()
    ):
        return "openai"
    return chosen


def _existing(user: User, idempotency_key: str) -> Generation | None:
    return Generation.objects.filter(author=user, idempotency_key=idempotency_key).first()


def _store_input(generation: Generation, submitted: SubmittedImage, role: str, position: int) -> None:
    item = GenerationInput(
        generation=generation,
        role=role,
        position=position,
        source_image=submitted.source_image,
        url=submitted.url,
    )
    if submitted.image is None:
        item.save()  # fetched by the worker
        return
    item.content_type = submitted.image.content_type
    item.file.save(
        f"{generation.pk}-{role}-{position}.{submitted.image.format}", ContentFile(submitted.image.data)
    )


def _enqueue(generation: Generation) -> None:
    """Send the generation's task, after its spend is committed. A broker that is down loses nothing: the
    generation is marked and the sweeper sends its task once the broker is back (`resend_pending_tasks`)."""
    publish_generation_changed(generation)
    try:
        queue.run_generation(generation.pk)
    except Exception:
        logger.warning(
            "generation %s: its task could not be sent; it will be sent again", generation.pk, exc_info=True
        )
        with contextlib.suppress(Exception):
            Generation.objects.filter(pk=generation.pk, status=Status.QUEUED).update(task_pending=True)


def price_list() -> pricing.PriceList:
    """The prices as they stand: the admin's rules (read on every call, a tiny table, so a change applies to
    the next submission), then CREDIT_PRICES, then CREDITS_PER_IMAGE."""
    from django.conf import settings

    return pricing.PriceList(
        default=settings.CREDITS_PER_IMAGE,
        rules={rule.key: rule.credits for rule in PriceRule.objects.all()},
        configured=settings.CREDIT_PRICES,
    )


def generation_finish(
    generation: Generation, *, from_statuses: tuple[str, ...], to: str, **changes: Any
) -> bool:
    """The terminal transition (succeeded, failed, canceled): True if this caller won it.

    The one place a generation ends, so what follows an end happens once: an API task with a callback URL
    gets its webhook enqueued when (and only if) this transaction commits.
    """
    if to in ACTIVE_STATUSES:
        raise ValueError(f"{to} is not a terminal status")
    won = generation.transition(from_statuses=from_statuses, to=to, **changes)
    if won and generation.callback_url:
        generation_id = generation.pk
        transaction.on_commit(lambda: _send_webhook(generation_id))
    return won


def _send_webhook(generation_id: object) -> None:
    """Send the webhook's task once the end is committed; a broker that is down marks it for the sweeper."""
    try:
        queue.deliver_webhook(generation_id)
    except Exception:
        logger.warning(
            "generation %s: its webhook could not be sent; it will be sent again",
            generation_id,
            exc_info=True,
        )
        with contextlib.suppress(Exception):
            Generation.objects.filter(pk=str(generation_id)).update(webhook_pending=True)


def generation_fail(generation: Generation, *, message: str, code: str = "") -> bool:
    """Fail an active generation and refund it. True if this call did it (only one caller can)."""
    with transaction.atomic():
        won = generation_finish(
            generation, from_statuses=ACTIVE_STATUSES, to=Status.FAILED, error=message, error_code=code
        )
        if won:
            ledger.refund(
                user_id=generation.author_id,
                amount=generation.cost,
                reference=generation.ledger_reference,
                reason=f"Failed: {message[:200]}",
            )
    if won:
        publish_generation_changed(generation)
    return won


def generation_cancel(generation: Generation, *, membership: Membership) -> bool:
    """Cancel a queued or running generation; nothing was delivered, so all of it is refunded."""
    if generation.author_id != membership.user_id and not membership.is_owner:
        raise PermissionDenied("Only the author or an owner can cancel this generation.")
    with transaction.atomic():
        won = generation_finish(
            generation, from_statuses=ACTIVE_STATUSES, to=Status.CANCELED, stage="Canceled"
        )
        if won:
            ledger.refund(
                user_id=generation.author_id,
                amount=generation.cost,
                reference=generation.ledger_reference,
                reason="Canceled",
            )
    if won:
        publish_generation_changed(generation)
    return won


def generation_refund(generation: Generation, *, reason: str, actor: User | None = None) -> bool:
    """Refund a failed or canceled generation if it has not been refunded yet (admin action). Idempotent."""
    if generation.status not in (Status.FAILED, Status.CANCELED):
        return False
    entry = ledger.refund(
        user_id=generation.author_id,
        amount=generation.cost,
        reference=generation.ledger_reference,
        reason=reason,
        actor=actor,
    )
    return entry is not None


# Projects


class ProjectError(Exception):
    """A project change that breaks a rule; the message is shown as is."""


def _require_writer(membership: Membership) -> None:
    if not membership.can_write:
        raise PermissionDenied("Viewers cannot change the projects of this workspace.")


@transaction.atomic
def project_create(*, membership: Membership, name: str) -> Project:
    _require_writer(membership)
    Project.default_for(membership.workspace)  # the first project made by hand is never the only one
    return Project.objects.create(workspace=membership.workspace, name=name)


@transaction.atomic
def project_rename(*, project: Project, membership: Membership, name: str) -> Project:
    _require_writer(membership)
    project.name = name
    project.save(update_fields=["name"])
    return project


@transaction.atomic
def project_archive(*, project: Project, membership: Membership) -> Project:
    """Hide a project from the composer; its images stay in the gallery."""
    _require_writer(membership)
    if project.is_default:
        raise ProjectError(
            f"{project} is the default project, where images go when none is chosen. It stays open."
        )
    project.archived_at = project.archived_at or timezone.now()
    project.save(update_fields=["archived_at"])
    return project


@transaction.atomic
def project_restore(*, project: Project, membership: Membership) -> Project:
    _require_writer(membership)
    project.archived_at = None
    project.save(update_fields=["archived_at"])
    return project


# Images: the gallery's move and delete


def image_can_manage(membership: Membership, image: Image) -> bool:
    """Owners manage every image of their workspace, editors the images they made, viewers none."""
    if membership.workspace_id != image.workspace_id or not membership.can_write:
        return False
    return membership.is_owner or image.generation.author_id == membership.user_id


def images_require_manageable(membership: Membership, images: list[Image], verb: str) -> None:
    """Raise PermissionDenied, saying why, unless the member may move or delete every one of these images."""
    refused = [image for image in images if not image_can_manage(membership, image)]
    if not refused:
        return
    if not membership.can_write:
        raise PermissionDenied(f"Viewers cannot {verb} images.")
    raise PermissionDenied(
        f"Editors can {verb} only the images they made; {len(refused)} of the {len(images)} selected "
        f"{'is' if len(refused) == 1 else 'are'} by someone else. Nothing was changed."
    )


def images_move(*, membership: Membership, images: list[Image], project: Project) -> int:
    """Move the generations of these images to `project`; all or nothing. Returns the number of generations.

    A project holds generations, so moving one image of a generation of several moves its siblings too.
    """
    images_require_manageable(membership, images, "move")
    if project.workspace_id != membership.workspace_id:
        raise PermissionDenied("That project belongs to another workspace.")
    if project.is_archived:
        raise ProjectError(f"The project {project} is archived. Restore it to move images into it.")
    generation_ids = {image.generation_id for image in images}
    with transaction.atomic():
        return Generation.objects.filter(pk__in=generation_ids, workspace=membership.workspace).update(
            project=project
        )


def images_delete(*, membership: Membership, images: list[Image]) -> int:
    """Delete these images and their files; all or nothing. Returns the number of images deleted.

    A generation left without images goes too (with its partial image and input files), so no empty card
    stays behind; the ledger keeps its entries. Files are removed only once the transaction has committed.
    """
    images_require_manageable(membership, images, "delete")
    image_ids = [image.pk for image in images]
    generation_ids = {image.generation_id for image in images}
    with transaction.atomic():
        doomed = list(Image.objects.filter(pk__in=image_ids, workspace=membership.workspace))
        files = [name for image in doomed for name in (image.file.name, image.thumbnail.name) if name]
        Image.objects.filter(pk__in=[image.pk for image in doomed]).delete()
        emptied = Generation.objects.filter(pk__in=generation_ids, images__isnull=True)
        for generation in emptied.prefetch_related("inputs"):
            files.extend(item.file.name for item in generation.inputs.all() if item.file)
            if generation.partial_image:
                files.append(generation.partial_image.name)
        emptied_ids = [str(pk) for pk in emptied.values_list("pk", flat=True)]
        emptied.delete()
        transaction.on_commit(lambda: _delete_files(files))
        removed = [str(image.pk) for image in doomed]
        transaction.on_commit(
            lambda: publish_removed(membership.workspace_id, images=removed, generations=emptied_ids)
        )
    return len(doomed)


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            # The rows are gone; a file left behind costs disk, not correctness.
            logger.warning("could not delete %s", name, exc_info=True)
