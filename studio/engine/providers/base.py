from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from studio.engine.spec import GenerationSpec


@dataclass(frozen=True)
class InputImage:
    data: bytes
    filename: str = "image.png"
    content_type: str = "image/png"


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
