from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from studio.engine.spec import GenerationSpec


@dataclass(frozen=True)
class InputImage:
    data: bytes
    filename: str = "image.png"
    content_type: str = "image/png"
    # A short-lived signed link to the same image on this studio, for services that take inputs only by URL
    # (empty when the studio has no public URL).
    url: str = ""


@dataclass(frozen=True)
class PartialImage:
    index: int
    data: bytes


@dataclass(frozen=True)
class FinalImage:
    data: bytes
    revised_prompt: str = ""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Completed:
    images: list[FinalImage]
    usage: Usage | None = None
    request_id: str = ""
    size: str = ""
    quality: str = ""
    output_format: str = ""
    background: str = ""


Event = PartialImage | Completed


class ProviderError(Exception):
    """An upstream failure, with a message a person understands."""

    retryable = False

    def __init__(self, message: str, *, code: str = "", status: int | None = None, request_id: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id


class Rejected(ProviderError):
    """The upstream refused the request (moderation, validation, quota, auth): retrying will not help."""


class Transient(ProviderError):
    """A failure that may pass (connection, timeout, rate limit, 5xx, a cut stream): worth a retry."""

    retryable = True


class AccountUnavailable(ProviderError):
    """This account cannot serve now, though another may: it is rate limited (`reason` "rate_limited", for
    `retry_after` seconds when the service says), its key was refused ("credentials") or its quota is spent
    ("quota"). The pool cools the account down or disables it and moves the attempt to another account."""

    retryable = True

    def __init__(self, message: str, *, reason: str, retry_after: float | None = None, **details: Any):
        super().__init__(message, **details)
        self.reason = reason
        self.retry_after = retry_after


class Provider(Protocol):
    name: str

    def generate(
        self, spec: GenerationSpec, *, images: list[InputImage], mask: InputImage | None
    ) -> Iterator[Event]:
        """Yield PartialImage events as they arrive, then exactly one Completed. Raise ProviderError."""
        ...


@dataclass(frozen=True)
class TaskState:
    """What a task-style service says of one of its tasks: still working (with its progress, 0-100), or done
    with the links of its images. A failed task is raised as a ProviderError instead."""

    done: bool
    progress: int = 0
    result_urls: tuple[str, ...] = ()


class TaskProvider(Protocol):
    """A service that takes a task and is asked later how it went (sjinn, sinancode, givon). The runner
    creates the tasks, then a Celery task sent with a countdown polls them, so no thread waits meanwhile."""

    name: str

    def can_serve(self, spec: GenerationSpec) -> str | None:
        """Why this service cannot make `spec` (a sentence), or None when it can."""
        ...

    def create(self, spec: GenerationSpec, *, images: list[InputImage], mask: InputImage | None) -> list[str]:
        """Start the tasks that make the spec's images (one per image where the service makes one a task);
        their ids. Raise ProviderError."""
        ...

    def poll(self, task_id: str) -> TaskState:
        """Ask how one task is going. Raise ProviderError when it failed or cannot be asked."""
        ...

    def results(self, spec: GenerationSpec, states: list[TaskState]) -> Completed:
        """Download the finished tasks' images (through the SSRF guard) in the format the spec asks for."""
        ...


DAMAGED_IMAGE_MESSAGE = "The image service sent a damaged image."
QUOTA_MESSAGE = "The studio's image service account is out of quota. Your credits were refunded."
MODERATION_MESSAGE = "The request was blocked by the safety system. Try rewording the prompt."
CREDENTIALS_MESSAGE = "The image service refused the studio's credentials."


def trace_headers() -> dict[str, str]:
    """The id of the web request behind this work (bound to the task's log context by django-structlog), sent
    upstream so that its logs and the studio's can be matched."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return {TRACE_HEADER: str(request_id)} if request_id else {}


TRACE_HEADER = "X-Client-Request-Id"  # OpenAI's name for a caller's own request id


def retry_after_seconds(header: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by image services)."""
    try:
        seconds = float(header) if header else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def classify_failure(
    *,
    code: str,
    error_type: str,
    status: int | None,
    upstream_message: str,
    request_id: str,
    retry_after: float | None = None,
) -> ProviderError:
    def details(default_code: str = "") -> dict[str, Any]:
        return {"code": code or default_code, "status": status, "request_id": request_id}

    if code == "insufficient_quota" or error_type == "insufficient_quota":
        return AccountUnavailable(
            QUOTA_MESSAGE, reason="quota", code="insufficient_quota", status=status, request_id=request_id
        )
    if code == "moderation_blocked":
        return Rejected(MODERATION_MESSAGE, **details())
    if status == 429:
        return AccountUnavailable(
            "The image service is rate limiting the studio. Try again in a moment.",
            reason="rate_limited",
            retry_after=retry_after,
            **details("rate_limited"),
        )
    if status is not None and status >= 500:
        return Transient(
            "The image service had an internal error. Try again.",
            **details("server_error"),
        )
    if status in (401, 403):
        return AccountUnavailable(CREDENTIALS_MESSAGE, reason="credentials", **details("unauthorized"))
    if status in (408, 409):
        # Request timeout and lock conflict: the SDK's own retry policy counts these as passing.
        return Transient(
            upstream_message or "The image service was busy. Try again.",
            **details("conflict"),
        )
    if status is not None or error_type == "invalid_request_error":
        return Rejected(
            upstream_message or "The image service rejected the request.",
            **details("invalid_request"),
        )
    # A failure reported mid-stream with nothing saying the request itself was at fault.
    return Transient(
        upstream_message or "The image service failed while drawing the image. Try again.",
        **details("stream_error"),
    )
