"""Drive a provider for one generation: claim it, stream its events into the database and to the pages,
store the results, retry what may pass, and fail (with a refund) what will not.

No database connection is held while the upstream works: a worker thread may wait minutes for an image, and
a hundred of them must not pin a hundred connections.
"""

import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from studio import images as image_files
from studio.events import publish_generation_changed
from studio.models import Generation, Image, InputRole, Status
from studio.providers import Completed, InputImage, PartialImage, ProviderError, get_provider
from studio.services import generation_fail

logger = logging.getLogger("studio.runner")

UNEXPECTED_ERROR = "Something went wrong on our side while making this image. Your credits were refunded."


class Canceled(Exception):
    """The generation stopped being ours (canceled, or failed by the sweeper) while we worked."""


def _release_connection() -> None:
    # Hand the connection back before a long wait; Django opens a new one on the next query.
    if not connection.in_atomic_block:
        connection.close()


def run_generation(generation_id: str) -> None:
    close_old_connections()
    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None:
        logger.warning("generation %s does not exist", generation_id)
        return
    if not generation.transition(from_statuses=(Status.QUEUED,), to=Status.RUNNING, stage="Starting"):
        logger.info("generation %s is %s, not queued: nothing to do", generation_id, generation.status)
        return
    publish_generation_changed(generation)
    try:
        spec = generation.generation_spec
        references, mask = _load_inputs(generation)
        provider = get_provider(generation.provider)
        _run_attempts(generation, provider, spec, references, mask)
    except Canceled:
        logger.info("generation %s was stopped while running", generation_id)
    except Exception:
        logger.exception("generation %s failed unexpectedly", generation_id)
        generation_fail(generation, message=UNEXPECTED_ERROR, code="internal_error")
    finally:
        _release_connection()


def _load_inputs(generation: Generation) -> tuple[list[InputImage], InputImage | None]:
    references: list[InputImage] = []
    mask = None
    for item in generation.inputs.all():
        with item.file.open("rb") as handle:
            data = handle.read()
        extension = item.content_type.split("/")[-1]
        image = InputImage(
            data=data, filename=f"{item.role}-{item.position}.{extension}", content_type=item.content_type
        )
        if item.role == InputRole.MASK:
            mask = image
        else:
            references.append(image)
    return references, mask


def _run_attempts(generation, provider, spec, references, mask) -> None:
    max_attempts = 1 + settings.GENERATION_MAX_RETRIES
    for attempt in range(1, max_attempts + 1):
        _update(generation, attempts=attempt, stage="Waiting for the image model")
        started = time.monotonic()
        outcome, error = "succeeded", None
        try:
            for event in provider.generate(spec, images=references, mask=mask):
                if isinstance(event, PartialImage):
                    _store_partial(generation, event)
                elif isinstance(event, Completed):
                    _complete(generation, event, latency=time.monotonic() - started)
                    return
            raise RuntimeError("the provider ended without a result")
        except ProviderError as provider_error:
            error = provider_error
            outcome = "retrying" if provider_error.retryable and attempt < max_attempts else "failed"
        finally:
            _log_attempt(generation, provider, attempt, started, outcome, error)
        if outcome == "failed":
            generation_fail(generation, message=error.message, code=error.code or "upstream_error")
            return
        _update(generation, stage=f"Retrying after a temporary problem ({attempt} of {max_attempts - 1})")
        _release_connection()
        time.sleep(settings.GENERATION_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))


def _log_attempt(generation, provider, attempt: int, started: float, outcome: str, error) -> None:
    generation.refresh_from_db(fields=["usage", "upstream_request_id", "result_size"])
    logger.info(
        json.dumps(
            {
                "event": "generation_attempt",
                "generation": str(generation.pk),
                "provider": provider.name,
                "attempt": attempt,
                "outcome": outcome,
                "latency_ms": round((time.monotonic() - started) * 1000),
                "request_id": getattr(error, "request_id", "") or generation.upstream_request_id,
                "error_code": getattr(error, "code", ""),
                "status": getattr(error, "status", None),
                "size": generation.result_size,
                "usage": generation.usage,
            }
        )
    )


def _update(generation: Generation, **changes) -> None:
    """Record progress, unless the generation stopped being ours meanwhile."""
    updated = Generation.objects.filter(pk=generation.pk, status=Status.RUNNING).update(
        heartbeat_at=timezone.now(), seq=F("seq") + 1, **changes
    )
    generation.refresh_from_db()
    if not updated:
        raise Canceled
    publish_generation_changed(generation)
    _release_connection()


def _store_partial(generation: Generation, event: PartialImage) -> None:
    spec_format = generation.spec.get("output_format", "png")
    name = default_storage.save(
        f"partials/{generation.pk}-{event.index}.{spec_format}", ContentFile(event.data)
    )
    previous = generation.partial_image.name
    try:
        _update(generation, partial_image=name, partial_count=F("partial_count") + 1, stage="Drawing")
    except Canceled:
        default_storage.delete(name)
        raise
    if previous and previous != name:
        default_storage.delete(previous)


def _complete(generation: Generation, result: Completed, *, latency: float) -> None:
    saved: list[str] = []
    try:
        with transaction.atomic():
            for index, final in enumerate(result.images):
                checked = image_files.check_image(final.data)
                image = Image(
                    generation=generation,
                    workspace_id=generation.workspace_id,
                    index=index,
                    width=checked.width,
                    height=checked.height,
                    format=checked.format,
                    bytes=len(final.data),
                )
                stem = f"{generation.pk}-{index}"
                image.file.save(f"{stem}.{checked.format}", ContentFile(final.data), save=False)
                image.thumbnail.save(
                    f"{stem}.webp", ContentFile(image_files.thumbnail(final.data)), save=False
                )
                saved += [image.file.name, image.thumbnail.name]
                image.save()
            usage = result.usage
            won = generation.transition(
                from_statuses=(Status.RUNNING,),
                to=Status.SUCCEEDED,
                stage="",
                revised_prompt=next(
                    (image.revised_prompt for image in result.images if image.revised_prompt), ""
                ),
                usage=(
                    {
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                        "total_tokens": usage.total_tokens,
                        "details": usage.details,
                    }
                    if usage
                    else None
                ),
                upstream_latency_ms=round(latency * 1000),
                upstream_request_id=result.request_id[:200],
                result_size=result.size,
                result_quality=result.quality,
                result_format=result.output_format,
            )
            if not won:
                raise Canceled
    except Exception:
        for name in saved:
            default_storage.delete(name)
        raise
    publish_generation_changed(generation)


def sweep_stuck_generations() -> int:
    """Fail and refund generations whose worker went silent (killed, lost) past the deadline."""
    now = timezone.now()
    silent_since = now - timedelta(seconds=settings.GENERATION_STALE_SECONDS)
    queued_since = now - timedelta(seconds=settings.GENERATION_QUEUED_MAX_SECONDS)
    stuck = Generation.objects.filter(
        Q(status=Status.RUNNING, heartbeat_at__lt=silent_since)
        | Q(status=Status.QUEUED, created_at__lt=queued_since)
    )
    count = 0
    for generation in stuck:
        if generation_fail(
            generation,
            message="This generation stopped responding and was canceled. Your credits were refunded.",
            code="timeout",
        ):
            count += 1
    if count:
        logger.warning("swept %s stuck generations", count)
    return count
