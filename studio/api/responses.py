"""OpenAI's Responses API with the `image_generation` tool: `POST /v1/responses`.

A client that calls `client.responses.create(model=..., input=..., tools=[{"type": "image_generation"}])`,
streamed or not, gets a response whose output holds one `image_generation_call` with the image (and, when
streaming, `response.image_generation_call.partial_image` events as partial images arrive). The prompt is the
input's text; input images become references, the tool's `input_image_mask` the mask. It is charged like any
generation. What the studio cannot do (other tools, a text answer without an image) is a clear 400.
"""

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from ninja import Field, Router

from studio.api import encoded, openai_params
from studio.api.auth import Caller, caller_of
from studio.api.errors import invalid
from studio.api.image_refs import resolve_image, resolve_images
from studio.api.openai import STREAMED, _failure, _read
from studio.api.schemas import ERRORS, Error, Request
from studio.api.submission import charge, idempotency_key, own_hosts, submit_before_waiting
from studio.engine import spec as spec_module
from studio.engine.watch import watch
from studio.models import Generation, Source, Status

router = Router(tags=["OpenAI Responses API"])

TOOL_FIELDS = (
    "size", "quality", "output_format", "output_compression", "background", "moderation", "partial_images",
)  # fmt: skip


class ResponsesParameters(Request):
    model: str = Field(..., max_length=100, description="The text model named by the client (echoed back)")
    input: str | list[dict[str, Any]] = Field(
        ..., description="Text, or messages with input_text/input_image"
    )
    tools: list[dict[str, Any]] = Field(
        default_factory=list, description='[{"type": "image_generation", ...}]'
    )
    instructions: str | None = Field(None, max_length=spec_module.PROMPT_MAX_CHARS)
    stream: bool | None = None


class ResponseObject(Request):
    id: str
    object: str
    created_at: int
    status: str
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def _image_tool(tools: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = [str(tool.get("type", "")) for tool in tools]
    others = sorted({kind for kind in kinds if kind != "image_generation"})
    if others:
        raise invalid(
            f"The studio serves only the image_generation tool, not {', '.join(others)}.", param="tools"
        )
    if "image_generation" not in kinds:
        raise invalid(
            "The studio makes images only: add the image_generation tool "
            '(tools=[{"type": "image_generation"}]).',
            param="tools",
        )
    return tools[kinds.index("image_generation")]


def _prompt_and_images(body: ResponsesParameters) -> tuple[str, list[str]]:
    """The text of the input (and instructions), and its input images' URLs."""
    texts: list[str] = []
    images: list[str] = []
    if isinstance(body.input, str):
        texts.append(body.input)
    else:
        for item in body.input:
            content = item.get("content", "")
            parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
            if not isinstance(parts, list):
                raise invalid("Each input message's content is text or a list of parts.", param="input")
            for part in parts:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in ("input_text", "text") and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif kind == "input_image" and isinstance(part.get("image_url"), str):
                    images.append(part["image_url"])
                else:
                    raise invalid(
                        f"The studio reads input_text and input_image parts, not {kind!r}.", param="input"
                    )
    prompt = "\n".join(text.strip() for text in [body.instructions or "", *texts] if text and text.strip())
    if not prompt:
        raise invalid("The input has no text to make an image from.", param="input")
    return prompt, images


def _submit(caller: Caller, request: HttpRequest, body: ResponsesParameters) -> tuple[Generation, str]:
    tool = _image_tool(body.tools)
    prompt, image_urls = _prompt_and_images(body)
    workspace, hosts = caller.membership.workspace, own_hosts(request)
    references = resolve_images(image_urls, workspace=workspace, own_hosts=hosts, param="input")
    mask_given = tool.get("input_image_mask") or {}
    if not isinstance(mask_given, dict):
        raise invalid('input_image_mask is an object: {"image_url": "..."}.', param="tools")
    mask_url = mask_given.get("image_url")
    if mask_url is not None and not isinstance(mask_url, str):
        raise invalid("input_image_mask.image_url is a URL or a data: URI.", param="tools")
    mask = resolve_image(mask_url, workspace=workspace, own_hosts=hosts, param="tools") if mask_url else None
    if mask is not None and not references:
        raise invalid("A mask needs an input image.", param="tools")
    fields = {name: tool[name] for name in TOOL_FIELDS if tool.get(name) is not None}
    params = openai_params.parse(
        {"model": tool.get("model") or "gpt-image-2", "prompt": prompt, **fields},
        input_images=len(references),
        has_mask=mask is not None,
    )
    generation = charge(
        caller,
        spec=params.spec,
        references=references,
        mask=mask,
        idempotency_key=idempotency_key(request),
        source=Source.API,
    )
    return generation, prompt


def _call_item(generation: Generation, status: str, result: encoded.Base64 | None = None) -> dict[str, Any]:
    spec = generation.generation_spec
    item: dict[str, Any] = {
        "id": f"ig_{generation.pk.hex}",
        "type": "image_generation_call",
        "status": status,
    }
    if result is not None:
        item.update(
            result=result,
            revised_prompt=generation.revised_prompt or generation.prompt,
            size=generation.result_size or spec.api_size,
            quality=generation.result_quality or spec.quality,
            output_format=generation.result_format or spec.output_format,
            background=spec.background if spec.background != "auto" else "opaque",
        )
    return item


def _usage(generation: Generation) -> dict[str, Any]:
    usage = generation.usage or {}
    return {
        "input_tokens": usage.get("input_tokens", 0),
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.get("output_tokens", 0),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.get("total_tokens", 0),
    }


def _response(
    generation: Generation, model: str, tools: list[dict[str, Any]], status: str, output: list[dict[str, Any]]
) -> dict[str, Any]:
    error = None
    if status == "failed":
        failure = _failure(generation)
        error = {"code": failure.code or "server_error", "message": failure.message}
    return {
        "id": f"resp_{generation.pk.hex}",
        "object": "response",
        "created_at": int(generation.created_at.timestamp()),
        "status": status,
        "model": model,
        "output": output,
        "usage": _usage(generation) if status == "completed" else None,
        "error": error,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": tools,
    }


def _first_image(generation: Generation) -> encoded.Base64:
    image = generation.images.all()[0]
    return encoded.Base64(_read(image.file))


@router.post(
    "/v1/responses",
    response={200: ResponseObject, 402: Error, 409: Error, 502: Error, **ERRORS},
    url_name="openai-responses",
    openapi_extra=STREAMED,
)
async def responses(request: HttpRequest, body: ResponsesParameters) -> HttpResponseBase:
    generation, _ = await submit_before_waiting(request, _submit, caller_of(request), request, body)
    if body.stream:
        stream = StreamingHttpResponse(_events(generation.pk, body), content_type="text/event-stream")
        stream["Cache-Control"] = "no-cache"
        stream["X-Accel-Buffering"] = "no"
        return stream
    finished = None
    async for finished in watch(generation.pk):  # noqa: B007  (the last one is the finished one)
        pass
    if finished is None:
        raise RuntimeError(f"generation {generation.pk} was not found")
    if finished.status != Status.SUCCEEDED:
        return _failure(finished).response()
    result = await sync_to_async(_first_image, thread_sensitive=False)(finished)
    output = [_call_item(finished, "completed", result)]
    response = HttpResponse(
        encoded.dumps(_response(finished, body.model, body.tools, "completed", output)),
        content_type="application/json",
    )
    if timing := finished.server_timing():
        response["Server-Timing"] = timing
    return response


async def _events(generation_id: UUID, body: ResponsesParameters) -> AsyncIterator[bytes]:
    """The Responses API's stream: created, the call in progress and generating, partial images as they
    come, then the call done and the response completed (or failed)."""
    sequence = 0

    def event(kind: str, payload: dict[str, Any]) -> bytes:
        nonlocal sequence
        sequence += 1
        data = encoded.dumps({"type": kind, "sequence_number": sequence, **payload})
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    sent_partials, started = 0, False
    async for generation in watch(generation_id):
        item_id = f"ig_{generation.pk.hex}"
        if not started:
            started = True
            pending = _response(generation, body.model, body.tools, "in_progress", [])
            yield event("response.created", {"response": pending})
            yield event("response.in_progress", {"response": pending})
            added = {"output_index": 0, "item": _call_item(generation, "in_progress")}
            yield event("response.output_item.added", added)
            yield event("response.image_generation_call.in_progress", {"output_index": 0, "item_id": item_id})
        if generation.status == Status.RUNNING and generation.partial_count > sent_partials:
            if sent_partials == 0:
                yield event(
                    "response.image_generation_call.generating", {"output_index": 0, "item_id": item_id}
                )
            try:
                data = await sync_to_async(_read, thread_sensitive=False)(generation.partial_image)
            except (FileNotFoundError, ValueError):
                data = None  # replaced by a newer partial meanwhile; that one follows
            if data:
                sent_partials = generation.partial_count
                yield event(
                    "response.image_generation_call.partial_image",
                    {
                        "output_index": 0,
                        "item_id": item_id,
                        "partial_image_index": sent_partials - 1,
                        "partial_image_b64": encoded.Base64(data),
                    },
                )
        if generation.status == Status.SUCCEEDED:
            result = await sync_to_async(_first_image, thread_sensitive=False)(generation)
            item = _call_item(generation, "completed", result)
            yield event("response.image_generation_call.completed", {"output_index": 0, "item_id": item_id})
            yield event("response.output_item.done", {"output_index": 0, "item": item})
            done = _response(generation, body.model, body.tools, "completed", [item])
            yield event("response.completed", {"response": done})
        elif not generation.is_active:
            failed = _response(generation, body.model, body.tools, "failed", [])
            yield event("response.failed", {"response": failed})
