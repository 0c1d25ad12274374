"""Drive a provider for one generation: claim it, stream its events into the database and to the pages,
store the results, retry what may pass, and fail (with a refund) what will not.

No database connection is held while the upstream works: a worker thread may wait minutes for an image, and
a hundred of them must not pin a hundred connections. Every write is brief, and the connection is handed
back right after it (`release_connection`), before the provider is asked for its next event.

Who owns a generation: the runner that claimed it. A claim is a conditional update (queued to running, or,
for a task redelivered after its worker died, running with a silent heartbeat to running again) that sets
`started_at` anew, and every later write of the runner is conditional on the row still being running with
that `started_at`. So a canceled generation, one failed by the sweeper, or one claimed again by another
worker stops its old runner at its next write (`Canceled`), and at most one runner ever completes it.

The heartbeat is written when each attempt starts and with each partial image, so a live runner is silent
for at most one upstream wait (the read timeout, OPENAI_TIMEOUT_4K_SECONDS at most) plus a retry backoff.
A runner silent for GENERATION_TAKEOVER_SECONDS is gone, and a redelivered task takes its generation over;
config.settings checks at start-up that the takeover, the broker's redelivery and the sweeper's
GENERATION_STALE_SECONDS come in that order.

The database may go away under a runner (restarted, its connections terminated). Every write is brief and
can be made again, so a failed one drops the broken connection and is tried again on a fresh one, for up
to GENERATION_DATABASE_WAIT_SECONDS (`_durably`). Before the claim, a database that stays away makes the
task try again later (`DatabaseUnavailable`); after it, the generation is failed and refunded, or, if even
that cannot be written, left to the takeover and the sweeper.
"""

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import structlog
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from studio.engine import images as image_files
from studio.engine import input_links, pool, queue
from studio.engine.events import publish_generation_changed
from studio.engine.fetch import fetch_image
from studio.engine.metrics import ATTEMPTS, IN_FLIGHT, QUEUE_WAIT, UPSTREAM_LATENCY
from studio.engine.outbound import OutboundRefused
from studio.engine.providers import (
    AccountUnavailable,
    Completed,
    InputImage,
    PartialImage,
    Provider,
    ProviderError,
    Transient,
)
from studio.engine.providers.base import FinalImage
from studio.engine.providers.tasks import TaskServiceProvider
from studio.engine.services import generation_fail, generation_finish
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Image, InputRole, Status, UpstreamAccount, UpstreamAttempt

logger = logging.getLogger("studio.engine.runner")
# One structured line per upstream attempt, with the context of the task (the web request's id).
attempt_log = structlog.get_logger("studio.engine.runner")

UNEXPECTED_ERROR = "Something went wrong on our side while making this image. Your credits were refunded."
DAMAGED_IMAGE_ERROR = "The image service sent a damaged image."


T = TypeVar("T")
DATABASE_ERRORS = (OperationalError, InterfaceError)


class Canceled(Exception):
    """The generation stopped being ours (canceled, failed by the sweeper, claimed again) while we worked."""


class DatabaseUnavailable(Exception):
    """The database stayed away before the generation was claimed: run the task again later."""


class CheckAgainLater(Exception):
    """This delivery found the generation running under a runner heard from recently: it may be alive, or
    killed a moment ago. Look again once it would count as gone (`seconds` from now)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"check again in {seconds:.0f} s")
        self.seconds = seconds


@dataclasses.dataclass(frozen=True)
class _Checked:
    """A final image, checked and thumbnailed before any transaction is opened."""

    final: FinalImage
    image: image_files.CheckedImage
    thumbnail: bytes


def release_connection() -> None:
    # Hand the connection back before a long wait; Django opens a new one on the next query.
    if not connection.in_atomic_block:
        connection.close()


def _durably(write: Callable[[], T]) -> T:
    """Run a brief database write (or read), riding out a database that is briefly gone: a connection error
    drops the broken connection and tries again on a fresh one until GENERATION_DATABASE_WAIT_SECONDS."""
    deadline = time.monotonic() + settings.GENERATION_DATABASE_WAIT_SECONDS
    delay = 0.25
    while True:
        try:
            return write()
        except DATABASE_ERRORS:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning("the database is unavailable; trying again in %.2f s", delay, exc_info=True)
        with contextlib.suppress(Exception):
            connection.close()
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def silent(since: datetime) -> Q:
    """Running generations whose runner has not been heard from since `since`."""
    return Q(status=Status.RUNNING) & (Q(heartbeat_at__lt=since) | Q(heartbeat_at__isnull=True))


def _mine(generation: Generation) -> QuerySet:
    """The generation's row, if this runner still owns it (see the module docstring)."""
    return Generation.objects.filter(
        pk=generation.pk, status=Status.RUNNING, started_at=generation.started_at
    )


@IN_FLIGHT.track_inprogress()
def run_generation(generation_id: str) -> None:
    try:
        close_old_connections()
        try:
            generation = _durably(lambda: Generation.objects.filter(pk=generation_id).first())
            if generation is None:
                logger.warning("generation %s does not exist", generation_id)
                return
            claim = _durably(lambda: _claim(generation))
        except DATABASE_ERRORS as error:
            raise DatabaseUnavailable(str(error)) from error
        if claim is None:
            logger.info("generation %s is %s: nothing to do", generation_id, generation.status)
            return
        if claim == "reclaimed":
            logger.warning("generation %s: its worker went silent; running it again", generation_id)
            if _bound_to_tasks(generation):
                # Its tasks are at a task service already, bound to that account: ask about them again.
                _schedule_poll(generation, countdown=0)
                return
        try:
            spec = generation.generation_spec
            references, mask = _load_inputs(generation)
            release_connection()
            # No live update for the claim itself: the attempt's first write ("Waiting for the image model",
            # or "Waiting for a free image service" while the pool is full) follows at once and sends one.
            _run_attempts(generation, spec, references, mask)
        except Canceled:
            logger.info("generation %s was stopped while running", generation_id)
        except OutboundRefused as error:
            with contextlib.suppress(Canceled):
                _fail(generation, message=f"An input image could not be used: {error}", code="input_refused")
        except Exception:
            logger.exception("generation %s failed unexpectedly", generation_id)
            with contextlib.suppress(Canceled):
                _fail(generation, message=UNEXPECTED_ERROR, code="internal_error")
    finally:
        release_connection()


def _claim(generation: Generation) -> str | None:
    """Take the generation: "claimed" when it was queued, "reclaimed" when its runner went silent, None when
    it has ended; CheckAgainLater when its runner was heard from too recently to tell.

    A task is acknowledged only when it ends (acks_late), so a worker killed mid-generation leaves it to be
    delivered again, with the row still running. If the old runner has been silent past the takeover
    deadline, this delivery takes it over and draws it again: the author gets the image they paid for (one
    spend, nothing charged again) instead of a failure. The conditional update keeps two deliveries (or
    this claim and the sweeper) from both winning, and a live runner (its heartbeat fresh) from being taken
    over.
    """
    waited = timezone.now() - generation.created_at
    queue_ms = max(0, round(waited.total_seconds() * 1000))
    if generation.transition(
        from_statuses=(Status.QUEUED,), to=Status.RUNNING, stage="Starting", queue_ms=queue_ms
    ):
        QUEUE_WAIT.observe(queue_ms / 1000)
        return "claimed"
    now = timezone.now()
    takeover = timedelta(seconds=settings.GENERATION_TAKEOVER_SECONDS)
    reclaimed = Generation.objects.filter(silent(now - takeover), pk=generation.pk).update(
        started_at=now, heartbeat_at=now, stage="Starting again", seq=F("seq") + 1
    )
    generation.refresh_from_db()
    if reclaimed:
        return "reclaimed"
    if generation.status == Status.RUNNING and generation.heartbeat_at is not None:
        due = generation.heartbeat_at + takeover - now
        raise CheckAgainLater(max(due.total_seconds(), 0) + 1)
    return None


def _load_inputs(generation: Generation) -> tuple[list[InputImage], InputImage | None]:
    references: list[InputImage] = []
    mask = None
    for item in generation.inputs.all():
        if item.url and not item.file:
            # An image the client gave by URL: fetched here, in the worker, with the SSRF guard and limits,
            # and kept with the generation for its lineage.
            release_connection()
            checked = fetch_image(item.url)
            item.content_type = checked.content_type
            item.file.save(
                f"{generation.pk}-{item.role}-{item.position}.{checked.format}", ContentFile(checked.data)
            )
            data = checked.data
        else:
            with item.file.open("rb") as handle:
                data = handle.read()
        extension = item.content_type.split("/")[-1]
        image = InputImage(
            data=data,
            filename=f"{item.role}-{item.position}.{extension}",
            content_type=item.content_type,
            url=input_links.input_url(item.pk),
        )
        if item.role == InputRole.MASK:
            mask = image
        else:
            references.append(image)
    return references, mask


def _run_attempts(
    generation: Generation,
    spec: GenerationSpec,
    references: list[InputImage],
    mask: InputImage | None,
    *,
    first_attempt: int = 1,
    avoid: set[int] | None = None,
) -> None:
    """Up to 1 + GENERATION_MAX_RETRIES attempts, each on an account the pool leases (studio.engine.pool):
    a failure an account caused moves the next attempt to another one, within the same budget. An attempt on
    a task service ends here once its tasks are created: the polls that follow finish it (`poll_generation`),
    and go on from `first_attempt` if it fails."""
    avoid = set(avoid or ())
    for attempt in range(first_attempt, _max_attempts() + 1):
        started = time.monotonic()
        outcome, error, result, account, provider_name = "error", None, None, None, generation.provider
        polled_elsewhere = True
        try:
            with pool.lease(
                generation.provider,
                spec,
                avoid=avoid,
                wait_seconds=settings.UPSTREAM_SLOT_WAIT_SECONDS,
                on_wait=lambda: _update(generation, stage="Waiting for a free image service"),
            ) as leased:
                account, provider_name = leased.account, leased.provider.name
                served_by = {"upstream_account": account} if account is not None else {}
                _update(
                    generation,
                    attempts=attempt,
                    stage="Waiting for the image model",
                    upstream_tasks=None,
                    **served_by,
                )
                started = time.monotonic()
                if isinstance(leased.provider, TaskServiceProvider):
                    polled_elsewhere = _start_tasks(generation, leased, spec, references, mask)
                    outcome = "handed_over"
                else:
                    result = _draw(generation, cast(Provider, leased.provider), spec, references, mask)
            if result is None:  # handed over to the polls
                if not polled_elsewhere:
                    poll_generation(str(generation.pk), _owner(generation))
                return
            arrived = time.monotonic()
            latency = arrived - started
            pool.record_success(account)  # it answered: its health is mended before the result is stored
            _complete(generation, result, _check(result), latency=latency, arrived=arrived)
            outcome = "succeeded"
        except ProviderError as provider_error:
            error = provider_error
            outcome = _failed_attempt(error, account, attempt, avoid)
        except Canceled:
            outcome = "canceled"
            raise
        finally:
            if outcome != "handed_over":
                _log_attempt(generation, provider_name, account, attempt, started, outcome, error, result)
        if outcome == "succeeded":
            return
        assert error is not None
        if not _after_failed_attempt(generation, error, account, attempt, outcome):
            return


def _max_attempts() -> int:
    return 1 + settings.GENERATION_MAX_RETRIES


def _failed_attempt(
    error: ProviderError, account: UpstreamAccount | None, attempt: int, avoid: set[int]
) -> str:
    """Record what the failure says of the account's health; "retrying" or "failed"."""
    if pool.record_failure(account, error) and account is not None:
        avoid.add(account.pk)
    return "retrying" if _retryable(error, account) and attempt < _max_attempts() else "failed"


def _after_failed_attempt(
    generation: Generation, error: ProviderError, account: UpstreamAccount | None, attempt: int, outcome: str
) -> bool:
    """Fail (and refund) the generation, or get ready for its next attempt: True when there is one."""
    if outcome == "failed":
        _fail(generation, message=error.message, code=error.code or "upstream_error")
        return False
    _update(generation, stage=f"Retrying after a temporary problem ({attempt} of {_max_attempts() - 1})")
    # An account's own trouble (a rate limit, a refused key) moves the next attempt to another account
    # at once, or waits for this one's cooldown in the pool; anything else, and the settings' single
    # account, backs off first.
    if account is None or not isinstance(error, AccountUnavailable):
        time.sleep(settings.GENERATION_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return True


# Task services -----------------------------------------------------------------------------------------


def _bound_to_tasks(generation: Generation) -> bool:
    return bool((generation.upstream_tasks or {}).get("ids"))


def _owner(generation: Generation) -> str:
    """Who may poll the generation's tasks: the runner that claimed it (its `started_at`), for the tasks of
    its current attempt (a poll left over from an earlier attempt or owner finds a different token)."""
    tasks = generation.upstream_tasks or {}
    first_task = (tasks.get("ids") or [""])[0]
    started = generation.started_at.isoformat() if generation.started_at else ""
    return f"{started}/{first_task}"


def _schedule_poll(generation: Generation, *, countdown: float) -> None:
    queue.poll_generation(generation.pk, owner=_owner(generation), countdown=countdown)


def _start_tasks(
    generation: Generation,
    leased: pool.Lease,
    spec: GenerationSpec,
    references: list[InputImage],
    mask: InputImage | None,
) -> bool:
    """Create the attempt's tasks, bind them (and the account's slot) to the generation, and send the first
    poll. From here the slot belongs to the polls, which give it back when the tasks end. False when the
    broker could not take the poll: the caller then polls on its own thread."""
    provider = leased.provider
    assert isinstance(provider, TaskServiceProvider) and leased.account is not None
    task_ids = provider.create(spec, images=references, mask=mask)
    tasks = {"ids": task_ids, "slot": leased.slot, "created": time.time()}
    _update(generation, upstream_tasks=tasks, stage="Queued at the image service")
    leased.keep_slot()
    return _poll_later(generation)


def poll_generation(generation_id: str, owner: str) -> None:
    """Ask a task service how the generation's tasks are going: finish it when they are done, fail the
    attempt (and go on to the next) when they failed or took too long, else ask again after
    UPSTREAM_TASK_POLL_SECONDS. A poll for a generation that ended gives its account's slot back; one from a
    runner that no longer owns it (taken over) does nothing."""
    try:
        close_old_connections()
        try:
            generation = _durably(
                lambda: Generation.objects.select_related("upstream_account").filter(pk=generation_id).first()
            )
        except DATABASE_ERRORS as error:
            raise DatabaseUnavailable(str(error)) from error
        tasks = (generation.upstream_tasks if generation is not None else None) or {}
        if generation is None or not tasks.get("ids"):
            return
        if not generation.is_active:
            _give_back_slot(generation, tasks)
            return
        if generation.status != Status.RUNNING or _owner(generation) != owner:
            return
        try:
            while _poll_tasks(generation, tasks):
                pass
        except Canceled:
            logger.info("generation %s was stopped while its tasks ran", generation_id)
            _give_back_slot(generation, tasks)
        except Exception:
            logger.exception("generation %s failed unexpectedly while polling", generation_id)
            _give_back_slot(generation, tasks)
            with contextlib.suppress(Canceled):
                _fail(generation, message=UNEXPECTED_ERROR, code="internal_error")
    finally:
        release_connection()


def _give_back_slot(generation: Generation, tasks: dict[str, Any]) -> None:
    if tasks.get("slot") and generation.upstream_account_id is not None:
        pool.release_slot(generation.upstream_account_id, tasks["slot"])


def _poll_tasks(generation: Generation, tasks: dict[str, Any]) -> bool:
    """One look at the attempt's tasks. True when the next look must be taken here, on this thread (the
    broker could not take the next poll: the generation is not dropped while it is away)."""
    account = generation.upstream_account
    attempt = max(generation.attempts, 1)
    spec = generation.generation_spec
    provider = pool.provider_for(account) if account is not None else None
    name = provider.name if provider is not None else "task service"
    elapsed = time.time() - float(tasks.get("created") or time.time())
    started = time.monotonic() - elapsed
    result: Completed | None = None
    try:
        release_connection()
        if account is None or not isinstance(provider, TaskServiceProvider):
            raise Transient(
                "The image service account was removed while it worked. Try again.", code="account_removed"
            )
        states = [provider.poll(task_id) for task_id in tasks["ids"]]
        if not all(state.done for state in states):
            if elapsed > settings.UPSTREAM_TASK_DEADLINE_SECONDS:
                raise Transient(
                    "The image service took too long to make the image. Try again.", code="timeout"
                )
            progress = sum(state.progress for state in states) // len(states)
            _update(generation, stage=f"Drawing at the image service ({progress}%)")
            pool.refresh_slot(account, tasks["slot"])
            return not _poll_later(generation)
        result = provider.results(spec, states)
        arrived = time.monotonic()
        checked = _check(result)
    except ProviderError as provider_error:
        failure: ProviderError | None = provider_error
    else:
        failure = None
    if failure is not None:
        error = failure
        _give_back_slot(generation, tasks)
        avoid: set[int] = set()
        outcome = _failed_attempt(error, account, attempt, avoid)
        _log_attempt(generation, name, account, attempt, started, outcome, error, result)
        if _after_failed_attempt(generation, error, account, attempt, outcome):
            references, mask = _load_inputs(generation)
            release_connection()
            _run_attempts(generation, spec, references, mask, first_attempt=attempt + 1, avoid=avoid)
        return False
    assert result is not None
    _give_back_slot(generation, tasks)
    pool.record_success(account)
    try:
        _complete(generation, result, checked, latency=arrived - started, arrived=arrived)
    except Canceled:
        _log_attempt(generation, name, account, attempt, started, "canceled", None, result)
        raise
    _log_attempt(generation, name, account, attempt, started, "succeeded", None, result)
    return False


def _poll_later(generation: Generation) -> bool:
    """Send the next poll; False (after the poll interval has passed here) when the broker is away, and the
    next look is to be taken on this thread."""
    try:
        _schedule_poll(generation, countdown=settings.UPSTREAM_TASK_POLL_SECONDS)
    except Exception:
        logger.warning("the broker is unavailable: generation %s is polled on this thread", generation.pk)
        time.sleep(settings.UPSTREAM_TASK_POLL_SECONDS)
        return False
    return True


def _retryable(error: ProviderError, account: UpstreamAccount | None) -> bool:
    """The settings' single account has no other to move to: a refused key or a spent quota is final."""
    if isinstance(error, AccountUnavailable) and account is None:
        return error.reason == "rate_limited"
    return error.retryable


def _draw(
    generation: Generation,
    provider: Provider,
    spec: GenerationSpec,
    references: list[InputImage],
    mask: InputImage | None,
) -> Completed:
    """Store partial images as they come; return the provider's result. No connection is held meanwhile."""
    events = provider.generate(spec, images=references, mask=mask)
    try:
        for event in events:
            if isinstance(event, PartialImage):
                _store_partial(generation, event)
            elif isinstance(event, Completed):
                return event
    finally:
        # When we stop early (canceled), close the provider's stream at once, not when it is collected.
        if close := getattr(events, "close", None):
            close()
    raise RuntimeError("the provider ended without a result")


@functools.cache
def _checking_gate(size: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(size)


def _check(result: Completed) -> list[_Checked]:
    """Check and thumbnail the final images, outside any transaction (it takes a while for large images).
    At most WORKER_IMAGE_CONCURRENCY at once in the process: decoded pixels are the largest thing a worker
    holds (25 MB for a 4K image), and the cores are as busy with 16 as with 1,000."""
    with _checking_gate(max(1, settings.WORKER_IMAGE_CONCURRENCY)):
        return _check_images(result)


def _check_images(result: Completed) -> list[_Checked]:
    if not result.images:
        raise Transient(
            "The image service answered without an image. Try again.",
            code="no_image",
            request_id=result.request_id,
        )
    checked = []
    for final in result.images:
        try:
            image, thumbnail = image_files.check_and_thumbnail(final.data, max_bytes=1 << 31)
        except image_files.ImageProblem as problem:
            raise Transient(
                DAMAGED_IMAGE_ERROR, code="invalid_image", request_id=result.request_id
            ) from problem
        checked.append(_Checked(final=final, image=image, thumbnail=thumbnail))
    return checked


def _log_attempt(
    generation: Generation,
    provider_name: str,
    account: UpstreamAccount | None,
    attempt: int,
    started: float,
    outcome: str,
    error: ProviderError | None,
    result: Completed | None,
) -> None:
    """One structured line per attempt, from what the attempt returned (no database read)."""
    record = {
        "generation": str(generation.pk),
        "provider": provider_name,
        "account": account.name if account is not None else "",
        "attempt": attempt,
        "outcome": outcome,
        "latency_ms": round((time.monotonic() - started) * 1000),
        # The upstream's id of its answer; `request_id` is the web request's, from the task's log context.
        "upstream_request_id": (error.request_id if error else "") or (result.request_id if result else ""),
        "error_code": error.code if error else "",
        "status": error.status if error else None,
        "error": error.message if error else "",
        "size": result.size if result else "",
        "quality": result.quality if result else "",
        "output_format": result.output_format if result else "",
        "usage": dataclasses.asdict(result.usage) if result and result.usage else None,
    }
    level = logging.WARNING if outcome in ("failed", "error") else logging.INFO
    attempt_log.log(level, "generation_attempt", **record)
    account_label = account.name if account is not None else provider_name
    ATTEMPTS.labels(account_label, outcome).inc()
    UPSTREAM_LATENCY.labels(account_label, outcome).observe(time.monotonic() - started)
    if account is not None:
        _record_usage(generation, account, record, result)


def _record_usage(
    generation: Generation, account: UpstreamAccount, record: dict[str, Any], result: Completed | None
) -> None:
    """The attempt in the account's usage figures: best effort, never in the way of the generation."""
    usage = result.usage if result is not None else None
    try:
        UpstreamAttempt.objects.create(
            account=account,
            generation_id=generation.pk,
            outcome=record["outcome"],
            error_code=record["error_code"][:50],
            status=record["status"],
            latency_ms=record["latency_ms"],
            images=len(result.images) if result is not None and record["outcome"] == "succeeded" else 0,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
        )
    except DATABASE_ERRORS:
        logger.warning("the usage of %s for generation %s was not recorded", account, generation.pk)
    finally:
        release_connection()


def _update(generation: Generation, **changes: Any) -> None:
    """Record progress, unless the generation stopped being ours meanwhile (then raise Canceled).

    One UPDATE, no read back: while the row is ours no one else writes it (a cancel, the sweeper or a
    takeover ends our ownership, and our next write fails), so its new values are the ones just written."""
    now = timezone.now()
    updated = _durably(lambda: _mine(generation).update(heartbeat_at=now, seq=F("seq") + 1, **changes))
    if not updated:
        release_connection()
        raise Canceled
    release_connection()
    generation.heartbeat_at = now
    generation.seq += 1
    for name, value in changes.items():
        if not hasattr(value, "resolve_expression"):  # an F() expression's result is not known here
            setattr(generation, name, value)
    publish_generation_changed(generation)


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


def _complete(
    generation: Generation,
    result: Completed,
    checked: list[_Checked],
    *,
    latency: float,
    arrived: float | None = None,
) -> None:
    """Store the images and mark the generation succeeded, if it is still ours; else delete what was stored.

    Files are written before the transaction, which stays short: a few inserts and one update. `arrived`
    (monotonic) is when the upstream's answer was in: from there to the commit is the storage time.
    """
    arrived = time.monotonic() if arrived is None else arrived
    saved: list[str] = []
    try:
        images = []
        for index, item in enumerate(checked):
            image = Image(
                generation=generation,
                workspace_id=generation.workspace_id,
                index=index,
                width=item.image.width,
                height=item.image.height,
                format=item.image.format,
                bytes=len(item.final.data),
            )
            stem = f"{generation.pk}-{index}"
            image.file.save(f"{stem}.{item.image.format}", ContentFile(item.final.data), save=False)
            saved.append(image.file.name)
            image.thumbnail.save(f"{stem}.webp", ContentFile(item.thumbnail), save=False)
            saved.append(image.thumbnail.name)
            images.append(image)
        usage = result.usage

        def commit() -> None:
            with transaction.atomic():
                # Lock the row, so nobody cancels or fails it between this check and the transition.
                if not _mine(generation).select_for_update().exists():
                    raise Canceled
                for image in images:
                    image.save()
                won = generation_finish(
                    generation,
                    from_statuses=(Status.RUNNING,),
                    to=Status.SUCCEEDED,
                    stage="",
                    revised_prompt=next(
                        (final.revised_prompt for final in result.images if final.revised_prompt), ""
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
                    storage_ms=round((time.monotonic() - arrived) * 1000),
                    upstream_request_id=result.request_id[:200],
                    result_size=result.size,
                    result_quality=result.quality,
                    result_format=result.output_format,
                )
                if not won:
                    raise Canceled

        _durably(commit)
    except BaseException:
        if not _committed(saved):
            for name in saved:
                default_storage.delete(name)
        raise
    finally:
        release_connection()
    publish_generation_changed(generation)


def _committed(saved: list[str]) -> bool:
    """Whether the images stored under these names made it into the database (a commit whose answer was
    lost to a dropped connection): their files must then stay. When that cannot be told, they stay too."""
    if not saved:
        return False
    try:
        return _durably(lambda: Image.objects.filter(file=saved[0]).exists())
    except DATABASE_ERRORS:
        return True


def _fail(generation: Generation, *, message: str, code: str) -> None:
    """Fail and refund the generation if it is still ours; raise Canceled if it is not."""

    def commit() -> None:
        with transaction.atomic():
            if not _mine(generation).select_for_update().exists():
                raise Canceled
            generation_fail(generation, message=message, code=code)

    _durably(commit)
    release_connection()
    # generation_fail published inside this transaction; say it again now that the change is visible.
    publish_generation_changed(generation)
