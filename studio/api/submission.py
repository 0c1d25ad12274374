"""What the task dialects share: turning a request into a paid, queued generation, finding a caller's task,
and the pieces of a task's status (result links, progress, times)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import HttpRequest

from accounts.ledger import InsufficientCredits
from studio.api import links
from studio.api.auth import Caller
from studio.api.errors import forbidden, insufficient_credits, invalid, not_found
from studio.api.image_refs import resolve_image, resolve_images
from studio.engine.fetch import check_url
from studio.engine.outbound import OutboundRefused
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec, SpecError
from studio.models import Generation, Status

P = ParamSpec("P")
R = TypeVar("R")


async def submit_before_waiting(
    request: HttpRequest, submit: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run `submit` (the sync part of a request that then waits for its image, for as long as the upstream
    takes) on the request's thread, then let go of what only that part needed: the thread's database
    connection, handed back to the pool (Django would at the end of the request: twenty waiting requests
    held the whole pool and the next was answered 503), and the request's place in the web process's
    admission line (config.admission: the line bounds requests using threads and connections, not those
    awaiting; skipping it instead, a thousand at once fought over the pool). benches/submit.py found both."""

    def submit_then_release() -> R:
        try:
            return submit(*args, **kwargs)
        finally:
            connection.close()

    try:
        return await sync_to_async(submit_then_release)()
    finally:
        leave_line(request)


def leave_line(request: HttpRequest) -> None:
    """Give back the request's place in the admission line (config.admission), on the server's loop."""
    if leave := getattr(request, "scope", {}).get("studio.leave_line"):
        leave()


def own_hosts(request: HttpRequest) -> set[str]:
    """The names this studio answers to: links on them are its own media, read from storage."""
    hosts = {request.get_host().rpartition(":")[0] or request.get_host()}
    hosts |= {host.lstrip(".") for host in settings.ALLOWED_HOSTS if host != "*"}
    return {host.lower().strip("[]") for host in hosts}


def build_spec(**fields: Any) -> GenerationSpec:
    try:
        return GenerationSpec.build(**fields)
    except SpecError as error:
        param, message = next(iter(error.errors.items()))
        raise invalid(message, param=param) from error


def idempotency_key(request: HttpRequest) -> str:
    return request.headers.get("Idempotency-Key", "")[:100]


def submit(
    request: HttpRequest,
    caller: Caller,
    *,
    spec_fields: dict[str, Any],
    references: list[str] | None,
    mask: str | None,
    source: str,
    callback_url: str = "",
) -> Generation:
    """Check everything, then charge and queue: a refusal (400, 402, 403, 404) has charged nothing."""
    workspace = caller.membership.workspace
    hosts = own_hosts(request)
    submitted = resolve_images(references, workspace=workspace, own_hosts=hosts, param="images")
    submitted_mask = resolve_image(mask, workspace=workspace, own_hosts=hosts, param="mask") if mask else None
    if submitted_mask is not None and not submitted:
        raise invalid("A mask needs a source image.", param="mask")
    spec = build_spec(**spec_fields, input_images=len(submitted), has_mask=submitted_mask is not None)
    if callback_url and not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        try:
            check_url(callback_url)
        except OutboundRefused as error:
            raise invalid(f"callback: {error}", param="callback_url", code="url_refused") from error
    return charge(
        caller,
        spec=spec,
        references=submitted,
        mask=submitted_mask,
        idempotency_key=idempotency_key(request),
        source=source,
        callback_url=callback_url,
    )


def charge(caller: Caller, *, spec: GenerationSpec, **submission: Any) -> Generation:
    """Create and pay for the generation, answering the engine's refusals as the API does (402, 403)."""
    try:
        return generation_submit(membership=caller.membership, spec=spec, api_key=caller.key, **submission)
    except InsufficientCredits as error:
        raise insufficient_credits(error.needed, error.balance) from error
    except PermissionDenied as error:
        raise forbidden(str(error)) from error


def task_for(caller: Caller, task_id: str) -> Generation:
    """A task of the key's workspace; any other id, or another workspace's, is not found."""
    try:
        generation = (
            Generation.objects.filter(pk=task_id, workspace=caller.membership.workspace)
            .prefetch_related("images")
            .first()
        )
    except ValidationError:  # not a UUID
        generation = None
    if generation is None:
        raise not_found("No such task.")
    return generation


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/")


def result_urls(generation: Generation, base: str) -> list[str]:
    return [base.rstrip("/") + links.signed_path(image.pk) for image in generation.images.all()]


def progress(generation: Generation) -> int:
    if not generation.is_active:
        return 100
    if generation.status == Status.QUEUED:
        return 0
    expected = max(1, generation.spec.get("partial_images") or 0)
    return min(95, 10 + 80 * generation.partial_count // expected)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def is_finished_badly(generation: Generation) -> bool:
    return generation.status in (Status.FAILED, Status.CANCELED)
