"""The OpenAI Images API (or any gateway speaking it) through the official `openai` SDK.

Generations and edits, with partial images streamed over SSE. SDK retries are off: the runner's retry policy
is the only one, so a failure here surfaces at once as a typed ProviderError.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import httpx2
import openai

from studio.engine.providers import sse
from studio.engine.providers.base import (
    DAMAGED_IMAGE_MESSAGE,
    Completed,
    Event,
    FinalImage,
    InputImage,
    PartialImage,
    ProviderError,
    Rejected,
    Transient,
    Usage,
    classify_failure,
    retry_after_seconds,
    trace_headers,
)
from studio.engine.spec import GenerationSpec

PARTIAL_EVENT_TYPES = frozenset({"image_generation.partial_image", "image_edit.partial_image"})
COMPLETED_EVENT_TYPES = frozenset({"image_generation.completed", "image_edit.completed"})

NOT_CONFIGURED_MESSAGE = "The studio's image service has no API key configured."


# Clients per configuration and process, each thread of the worker keeping to one of them. A client's
# connection pool does work in proportion to its connections and requests, under one lock, each time a
# request starts or a response is closed; a thousand threads on one pool of a thousand connections waited
# in line for that lock (a worker with 1,000 in flight finished one generation every few seconds at times,
# its threads in the pool's bookkeeping; benches/inflight.py). Sixteen pools of ~60 each do not.
CLIENT_SHARDS = 16
_thread_shard = threading.local()
_next_shard = itertools.count()


def _shard() -> int:
    """This thread's share of the clients: given in turn as threads first ask, then kept."""
    shard = getattr(_thread_shard, "value", None)
    if shard is None:
        shard = _thread_shard.value = next(_next_shard) % CLIENT_SHARDS
    return shard


_clients: dict[tuple[str, str | None, float, int], openai.OpenAI] = {}
_clients_lock = threading.Lock()


def _shared_client(api_key: str, base_url: str | None, timeout_seconds: float) -> openai.OpenAI:
    """A client shared by the generations in flight (instead of a new one, about 25 ms of CPU, each): the
    one of this thread's shard, for this configuration. Made once, under a lock: two threads of a shard
    asking at the same moment get the same client."""
    key = (api_key, base_url, timeout_seconds, _shard())
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                if len(_clients) >= 8 * CLIENT_SHARDS:  # keys rotated many times: start afresh
                    _clients.clear()
                client = _clients[key] = openai.OpenAI(
                    api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_seconds
                )
    return client


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = "gpt-image-2",
        timeout_seconds: float = 120,
        timeout_4k_seconds: float = 300,
        images_at_once: int = 0,
    ):
        self.model = model
        # At most this many streamed images read at once in this process (0: no limit; see sse.json_events).
        self.gate = sse.gate(images_at_once) if images_at_once > 0 else None
        self.timeout_seconds = timeout_seconds
        self.timeout_4k_seconds = timeout_4k_seconds
        # The SDK refuses to build a client without a key. Leave it unbuilt so a misconfigured studio fails
        # each generation with a clear, typed error instead of crashing where the provider is made.
        self.client: openai.OpenAI | None = (
            _shared_client(api_key, base_url or None, timeout_seconds) if api_key else None
        )

    @classmethod
    def from_settings(cls) -> OpenAIProvider:
        from django.conf import settings

        return cls(
            api_key=settings.OPENAI_API_KEY,
            base_url=getattr(settings, "OPENAI_BASE_URL", None) or None,
            model=getattr(settings, "OPENAI_IMAGE_MODEL", None) or "gpt-image-2",
            timeout_seconds=float(getattr(settings, "OPENAI_TIMEOUT_SECONDS", 120)),
            timeout_4k_seconds=float(getattr(settings, "OPENAI_TIMEOUT_4K_SECONDS", 300)),
            images_at_once=int(getattr(settings, "WORKER_IMAGE_CONCURRENCY", 0)),
        )

    def generate(
        self, spec: GenerationSpec, *, images: list[InputImage], mask: InputImage | None
    ) -> Iterator[Event]:
        request_id = ""
        streaming = False
        try:
            if spec.partial_images > 0:
                # The raw stream (status errors are raised on the way in, as the SDK's own), read with the
                # studio's SSE reader: the SDK's scans each multi-megabyte image line with a regex.
                with self._request(spec, images, mask, stream=True) as response:
                    request_id = response.headers.get("x-request-id", "")
                    streaming = True
                    yield from self._read_stream(
                        spec, sse.json_events(response.iter_bytes(), gate=self.gate), request_id
                    )
            else:
                response = self._request(spec, images, mask, stream=False)
                yield self._completed_from_response(spec, response)
        except ProviderError:
            raise
        except openai.APIConnectionError as error:
            if streaming and not isinstance(error, openai.APITimeoutError):
                raise _stream_cut(request_id) from error
            raise translate_error(error, request_id=request_id) from error
        except openai.APIError as error:
            raise translate_error(error, request_id=request_id) from error
        except (httpx2.HTTPError, httpx.HTTPError) as error:
            # The SDK wraps the transport errors it expects; this catches any that slip past it.
            if streaming:
                raise _stream_cut(request_id) from error
            raise Transient(
                "The studio could not reach the image service. Try again.",
                code="connection_error",
                request_id=request_id,
            ) from error
        except json.JSONDecodeError as error:
            raise Transient(
                "The image service sent an answer the studio could not read.",
                code="invalid_response",
                request_id=request_id,
            ) from error

    def _request(
        self, spec: GenerationSpec, images: list[InputImage], mask: InputImage | None, *, stream: bool
    ) -> Any:
        client = self.client
        if client is None:
            raise Rejected(NOT_CONFIGURED_MESSAGE, code="not_configured")
        params: dict[str, Any] = {
            "model": self.model,
            "prompt": spec.prompt,
            "n": spec.n,
            "size": spec.api_size,
            "quality": spec.quality,
            "output_format": spec.output_format,
            "background": spec.background,
            "timeout": self.timeout_4k_seconds if spec.tier == "4K" else self.timeout_seconds,
            "extra_headers": trace_headers(),
        }
        if spec.output_compression is not None:
            params["output_compression"] = spec.output_compression
        if stream:
            params["stream"] = True
            params["partial_images"] = spec.partial_images

        # The SDK's overloads turn on `stream`, which is decided here at run time. A stream is taken raw.
        images_api: Any = client.images.with_streaming_response if stream else client.images
        if spec.input_images == 0:
            return images_api.generate(moderation=spec.moderation, **params)
        if not images:
            raise Rejected("An edit needs at least one image.", code="invalid_request")
        # The edits endpoint takes no `moderation` (the SDK has no such parameter for it).
        # A list, even of one image, makes the SDK send `image[]` parts.
        return images_api.edit(
            image=[_as_upload(image) for image in images],
            **({"mask": _as_upload(mask)} if mask is not None else {}),
            **params,
        )

    def _read_stream(self, spec: GenerationSpec, stream: Iterable[Any], request_id: str) -> Iterator[Event]:
        finals: list[FinalImage] = []
        last_completed: Any = None
        partials_seen = 0
        for event in stream:
            event_type = getattr(event, "type", None)
            if event_type in PARTIAL_EVENT_TYPES:
                index = getattr(event, "partial_image_index", None)
                yield PartialImage(
                    index=index if isinstance(index, int) else partials_seen,
                    data=_decode_image(_take(event, "b64_json"), request_id),
                )
                partials_seen += 1
            elif event_type in COMPLETED_EVENT_TYPES:
                # With n > 1 each image arrives in its own completed event.
                finals.append(FinalImage(data=_decode_image(_take(event, "b64_json"), request_id)))
                last_completed = event
            elif event_type == "error":
                raise _stream_error_event(event, request_id)
            # Anything else (a new event kind, a keep-alive) carries nothing to show.
        if not finals:
            raise _stream_cut(request_id)
        yield Completed(
            images=finals,
            # Every completed event reports the request's usage; the last one is the most complete.
            usage=_usage(getattr(last_completed, "usage", None)),
            request_id=request_id,
            **_result_settings(spec, last_completed),
        )

    def _completed_from_response(self, spec: GenerationSpec, response: Any) -> Completed:
        request_id = getattr(response, "_request_id", None) or ""
        data = response.data or []
        finals = [
            FinalImage(
                data=_decode_image(getattr(item, "b64_json", None), request_id),
                revised_prompt=getattr(item, "revised_prompt", None) or "",
            )
            for item in data
        ]
        if not finals:
            raise Transient(
                "The image service answered without an image. Try again.",
                code="no_image",
                request_id=request_id,
            )
        return Completed(
            images=finals,
            usage=_usage(response.usage),
            request_id=request_id,
            **_result_settings(spec, response),
        )


def translate_error(error: openai.APIError, *, request_id: str = "") -> ProviderError:
    """Turn an SDK error into a Rejected (retrying will not help) or a Transient (it may)."""
    if isinstance(error, openai.APITimeoutError):
        return Transient(
            "The image service took too long to answer. Try again.", code="timeout", request_id=request_id
        )
    if isinstance(error, openai.APIConnectionError):
        return Transient(
            "The studio could not reach the image service. Try again.",
            code="connection_error",
            request_id=request_id,
        )

    retry_after = None
    if isinstance(error, openai.APIStatusError):
        status: int | None = error.status_code
        request_id = error.request_id or request_id
        retry_after = retry_after_seconds(error.response.headers.get("retry-after"))
    else:
        # An `error` event inside an SSE stream: no status of its own.
        status = None
    return classify_failure(
        code=error.code or "",
        error_type=error.type or "",
        status=status,
        upstream_message=_upstream_message(error),
        request_id=request_id,
        retry_after=retry_after,
    )


def _stream_error_event(event: Any, request_id: str) -> ProviderError:
    # The SDK raises for `{"type": "error", "error": {...}}` itself; the flat shape, with the fields beside
    # `type`, reaches us as an ordinary event.
    nested = getattr(event, "error", None)
    source = nested if nested is not None else event
    fields = source.model_dump() if hasattr(source, "model_dump") else source
    if not isinstance(fields, dict):
        fields = {}

    def text(name: str) -> str:
        value = fields.get(name)
        return value.strip() if isinstance(value, str) else ""

    return classify_failure(
        code=text("code"),
        # In the flat shape `type` is the event's own ("error"), not the kind of error.
        error_type=text("type") if nested is not None else "",
        status=None,
        upstream_message=text("message"),
        request_id=request_id,
    )


def _stream_cut(request_id: str) -> Transient:
    return Transient(
        "The connection to the image service broke off before the image arrived. Try again.",
        code="stream_cut",
        request_id=request_id,
    )


def _upstream_message(error: openai.APIError) -> str:
    # `error.message` for status errors is "Error code: 400 - {...}"; the body has the sentence itself.
    body = error.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    if isinstance(error, openai.APIStatusError):
        return ""
    return error.message or ""


def _as_upload(image: InputImage) -> tuple[str, bytes, str]:
    return (image.filename, image.data, image.content_type)


def _decode_image(encoded: object, request_id: str) -> bytes:
    if not isinstance(encoded, str) or not encoded:
        raise Transient(DAMAGED_IMAGE_MESSAGE, code="invalid_image", request_id=request_id)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise Transient(DAMAGED_IMAGE_MESSAGE, code="invalid_image", request_id=request_id) from error


def _take(event: Any, name: str) -> Any:
    """A field of a streamed event, taken out of it where it can be (an image's base64 text is the biggest
    thing a worker holds: freed once decoded, not when the next event arrives)."""
    return event.take(name) if isinstance(event, sse.Fields) else getattr(event, name, None)


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    details: dict[str, Any] = {}
    for name in ("input_tokens_details", "output_tokens_details"):
        value = getattr(usage, name, None)
        if value is not None:
            details[name] = value.model_dump() if hasattr(value, "model_dump") else dict(value)
    return Usage(
        input_tokens=getattr(usage, "input_tokens", 0) or 0,
        output_tokens=getattr(usage, "output_tokens", 0) or 0,
        total_tokens=getattr(usage, "total_tokens", 0) or 0,
        details=details,
    )


def _result_settings(spec: GenerationSpec, answer: Any) -> dict[str, str]:
    """What the upstream says it made, falling back to what was asked."""
    asked = {
        "size": spec.api_size,
        "quality": spec.quality,
        "output_format": spec.output_format,
        "background": spec.background,
    }
    return {name: str(getattr(answer, name, None) or fallback) for name, fallback in asked.items()}


RESPONSES_PARTIAL = "response.image_generation_call.partial_image"


class OpenAIResponsesProvider(OpenAIProvider):
    """OpenAI's Responses API with the `image_generation` tool (`POST /v1/responses`), for services that
    draw through a text model: the account's model is that text model; the prompt, input images and mask go
    in the input and the tool. One image per call, so a request for n images makes n calls (partial images
    streamed from the first)."""

    name = "openai-responses"

    def generate(
        self, spec: GenerationSpec, *, images: list[InputImage], mask: InputImage | None
    ) -> Iterator[Event]:
        finals: list[FinalImage] = []
        usage: Usage | None = None
        request_id = ""
        for number in range(spec.n):
            streamed = spec.partial_images > 0 and number == 0
            for event in self._one(spec, images, mask, stream=streamed):
                if isinstance(event, Completed):
                    finals += event.images
                    usage = _added(usage, event.usage)
                    request_id = request_id or event.request_id
                else:
                    yield event
        yield Completed(images=finals, usage=usage, request_id=request_id, **_result_settings(spec, None))

    def _one(
        self, spec: GenerationSpec, images: list[InputImage], mask: InputImage | None, *, stream: bool
    ) -> Iterator[Event]:
        request_id = ""
        try:
            answer = self._create(spec, images, mask, stream=stream)
            if not stream:
                request_id = getattr(answer, "_request_id", None) or ""
                yield self._completed(answer.output or [], answer.usage, request_id)
                return
            with answer as response:
                request_id = response.headers.get("x-request-id", "")
                yield from self._read_events(
                    sse.json_events(response.iter_bytes(), gate=self.gate), request_id
                )
        except ProviderError:
            raise
        except openai.APIConnectionError as error:
            if stream and not isinstance(error, openai.APITimeoutError):
                raise _stream_cut(request_id) from error
            raise translate_error(error, request_id=request_id) from error
        except openai.APIError as error:
            raise translate_error(error, request_id=request_id) from error
        except (httpx2.HTTPError, httpx.HTTPError) as error:
            raise _stream_cut(request_id) from error
        except json.JSONDecodeError as error:
            raise Transient(
                "The image service sent an answer the studio could not read.",
                code="invalid_response",
                request_id=request_id,
            ) from error

    def _create(
        self, spec: GenerationSpec, images: list[InputImage], mask: InputImage | None, *, stream: bool
    ) -> Any:
        client = self.client
        if client is None:
            raise Rejected(NOT_CONFIGURED_MESSAGE, code="not_configured")
        if spec.input_images and not images:
            raise Rejected("An edit needs at least one image.", code="invalid_request")
        tool: dict[str, Any] = {
            "type": "image_generation",
            "size": spec.api_size,
            "quality": spec.quality,
            "output_format": spec.output_format,
            "background": spec.background,
            "moderation": spec.moderation,
        }
        if spec.output_compression is not None:
            tool["output_compression"] = spec.output_compression
        if mask is not None:
            tool["input_image_mask"] = {"image_url": _data_uri(mask)}
        if stream:
            tool["partial_images"] = spec.partial_images
        content: list[dict[str, Any]] = [{"type": "input_text", "text": spec.prompt}]
        content += [{"type": "input_image", "image_url": _data_uri(image)} for image in images]
        responses_api: Any = client.responses.with_streaming_response if stream else client.responses
        return responses_api.create(
            model=self.model,
            input=[{"role": "user", "content": content}],
            tools=[tool],
            stream=stream,
            timeout=self.timeout_4k_seconds if spec.tier == "4K" else self.timeout_seconds,
            extra_headers=trace_headers(),
        )

    def _read_events(self, stream: Iterable[Any], request_id: str) -> Iterator[Event]:
        output: list[Any] = []
        partials_seen = 0
        for event in stream:
            kind = getattr(event, "type", None)
            if kind == RESPONSES_PARTIAL:
                index = getattr(event, "partial_image_index", None)
                yield PartialImage(
                    index=index if isinstance(index, int) else partials_seen,
                    data=_decode_image(_take(event, "partial_image_b64"), request_id),
                )
                partials_seen += 1
            elif kind == "response.output_item.done":
                output.append(getattr(event, "item", None))
            elif kind == "response.completed":
                response = getattr(event, "response", None)
                made = output or getattr(response, "output", None) or []
                yield self._completed(made, getattr(response, "usage", None), request_id)
                return
            elif kind == "response.failed":
                error = getattr(getattr(event, "response", None), "error", None)
                raise classify_failure(
                    code=getattr(error, "code", "") or "",
                    error_type="",
                    status=None,
                    upstream_message=getattr(error, "message", "") or "",
                    request_id=request_id,
                )
            elif kind == "error":
                raise _stream_error_event(event, request_id)
        raise _stream_cut(request_id)

    def _completed(self, output: list[Any], usage: Any, request_id: str) -> Completed:
        calls = [item for item in output if getattr(item, "type", None) == "image_generation_call"]
        finals = [
            FinalImage(
                data=_decode_image(getattr(call, "result", None), request_id),
                revised_prompt=getattr(call, "revised_prompt", None) or "",
            )
            for call in calls
        ]
        if not finals:
            raise Transient(
                "The image service answered without an image. Try again.",
                code="no_image",
                request_id=request_id,
            )
        return Completed(images=finals, usage=_usage(usage), request_id=request_id)


def _data_uri(image: InputImage) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"


def _added(total: Usage | None, more: Usage | None) -> Usage | None:
    if more is None:
        return total
    if total is None:
        return more
    return Usage(
        input_tokens=total.input_tokens + more.input_tokens,
        output_tokens=total.output_tokens + more.output_tokens,
        total_tokens=total.total_tokens + more.total_tokens,
        details=total.details,
    )
