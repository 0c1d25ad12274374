"""Logs as one JSON line per event (structlog through the standard library's handlers, so Django's, Celery's
and the studio's own lines all come out alike), each carrying the request id django-structlog gives a web
request and hands on to the Celery tasks it sends (and the engine to the upstream, as X-Client-Request-Id).

Prompts are redacted unless LOG_PROMPTS is on; secrets (authorization headers, passwords, tokens, keys)
always; query strings never reach a line, and the signed token in an input link's path is replaced by its
route.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
PROMPT_KEYS = frozenset({"prompt", "revised_prompt", "negative_prompt", "input", "instructions"})
SECRET_KEYS = frozenset(
    {
        "authorization",
        "cookie",
        "password",
        "secret",
        "token",
        "api_key",
        "key",
        "webhook_secret",
        "signature",
    }
)
SECRET_SUFFIXES = ("_secret", "_password", "_token", "_api_key")

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


def _is_secret(key: str) -> bool:
    key = key.lower()
    return key in SECRET_KEYS or key.endswith(SECRET_SUFFIXES)


def _clean(value: Any, log_prompts: bool, depth: int = 0) -> Any:
    if isinstance(value, dict) and depth < 3:
        return {
            key: REDACTED
            if _is_secret(str(key)) or (not log_prompts and key in PROMPT_KEYS)
            else _clean(item, log_prompts, depth + 1)
            for key, item in value.items()
        }
    return value


def redactor(log_prompts: bool) -> Processor:
    """A structlog processor: secrets always out, prompts unless `log_prompts`, no query strings, and a
    path holding a token (input links) logged as its route."""

    def redact(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        cleaned = _clean(dict(event), log_prompts)
        request = cleaned.get("request")
        if isinstance(request, str):
            method_name, _, path = request.partition(" ")
            path = path.split("?", 1)[0]
            route = cleaned.get("route")
            if isinstance(route, str) and "token" in route:
                path = route
            cleaned["request"] = f"{method_name} {path}".strip()
        event.clear()
        event.update(cleaned)
        return event

    return redact


def drop_request_started(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """One line per request: the finished one (with status and duration), not the started one as well."""
    if event.get("event") == "request_started":
        raise structlog.DropEvent
    return event


def configure(*, log_format: str, log_prompts: bool, level: str) -> dict[str, Any]:
    """Set structlog up and return the LOGGING dict for Django."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redactor(log_prompts),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            drop_request_started,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": shared,
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        # httpx (and httpx2, under the openai SDK) log every request at INFO: in a worker with a thousand
        # generations in flight, threads queued on the log handler's lock for half their time (py-spy).
        "loggers": {
            name: {"level": "WARNING"} for name in ("daphne", "httpx", "httpx2", "httpcore", "httpcore2")
        },
    }
