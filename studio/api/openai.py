"""The OpenAI Images API: `POST /v1/images/generations`, `POST /v1/images/edits`, `GET /v1/models`, and the
signed file links handed out with `response_format=url`.

Any client written for OpenAI's API (the official SDKs included) works by changing the base URL and the key.
Requests run through the same queue and workers as the pages; this module only submits and relays.
"""

from collections.abc import AsyncIterator
from typing import Any, Literal, cast
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from ninja import Field, File, Form, Router, Schema
from ninja.files import UploadedFile

from studio.api import encoded, links, openai_params
from studio.api.auth import Caller, caller_of
from studio.api.errors import ApiError, invalid
from studio.api.schemas import ERRORS, Error, Request
from studio.api.submission import charge, idempotency_key, submit_before_waiting
from studio.engine import spec as spec_module
from studio.engine.images import MAX_INPUT_BYTES, CheckedImage, ImageProblem, check_image, check_mask
from studio.engine.services import SubmittedImage
from studio.engine.watch import watch
from studio.models import Generation, Image, Source, Status

router = Router(tags=["OpenAI Images API"])

# How a failed generation is answered: what the client did wrong is a 4xx; the upstream failing is a 502.
CLIENT_ERROR_CODES = {"moderation_blocked", "invalid_request", "content_policy_violation"}


class ImagesParameters(Request):
    model: str = Field("gpt-image-2", max_length=100, description=", ".join(openai_params.MODEL_ALIASES))
    prompt: str = Field(..., max_length=spec_module.PROMPT_MAX_CHARS)
    n: int | None = Field(None, ge=0, le=spec_module.MAX_IMAGES, description="0 or missing: 1")
    size: str | None = Field(None, max_length=20, description="auto, or WIDTHxHEIGHT (multiples of 16)")
    quality: Literal[spec_module.QUALITIES] | None = None  # type: ignore[valid-type]
    output_format: Literal[spec_module.OUTPUT_FORMATS] | None = None  # type: ignore[valid-type]
    output_compression: int | None = Field(None, ge=0, le=100)
    background: Literal[spec_module.BACKGROUNDS] | None = None  # type: ignore[valid-type]
    moderation: Literal[spec_module.MODERATIONS] | None = None  # type: ignore[valid-type]
    stream: bool | None = None
    partial_images: int | None = Field(None, ge=0, le=spec_module.MAX_PARTIAL_IMAGES)
    user: str | None = Field(None, max_length=200)
    response_format: Literal["b64_json", "url"] | None = None


class ImageData(Schema):
    b64_json: str | None = None
    url: str | None = Field(None, description="A signed link that expires")
    revised_prompt: str | None = None


class TokenDetails(Schema):
    text_tokens: int
    image_tokens: int


class Usage(Schema):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: TokenDetails


class ImagesResponse(Schema):
    created: int
    data: list[ImageData]
    size: str
    quality: str
    output_format: str
    background: str
    usage: Usage


class Model(Schema):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Schema):
    object: Literal["list"]
    data: list[Model]


IMAGE_ANSWERS = {200: ImagesResponse, 402: Error, 409: Error, 502: Error, **ERRORS}
# With stream=true the 200 is a stream of server-sent events instead of JSON: each an `event` name and its
# JSON `data` (image_generation.partial_image / .completed, image_edit.*, or error).
SSE_EVENT = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    "required": ["event", "data"],
}
STREAMED = {"responses": {200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}}}


def _submit(
    caller: Caller,
    request: openai_params.ImagesRequest,
    references: list[SubmittedImage],
    mask: SubmittedImage | None,
    key: str,
) -> Generation:
    return charge(
        caller, spec=request.spec, references=references, mask=mask, idempotency_key=key, source=Source.API
    )


@router.post(
    "/v1/images/generations", response=IMAGE_ANSWERS, url_name="openai-generations", openapi_extra=STREAMED
)
async def images_generations(request: HttpRequest, body: ImagesParameters) -> HttpResponseBase:
    params = openai_params.parse(body.model_dump(exclude_none=True))
    generation = await submit_before_waiting(
        request, _submit, caller_of(request), params, [], None, idempotency_key(request)
    )
    return await _answer(request, generation.pk, params, event_prefix="image_generation")


@router.post("/v1/images/edits", response=IMAGE_ANSWERS, url_name="openai-edits", openapi_extra=STREAMED)
async def images_edits(
    request: HttpRequest,
    fields: Form[ImagesParameters],
    image: list[UploadedFile] = File(None, description="One image, or repeat the field"),  # noqa: B008
    images: list[UploadedFile] = File(None, alias="image[]", description="Up to 16 images"),  # noqa: B008
    mask: UploadedFile = File(None, description="PNG with alpha, the first image's size"),  # noqa: B008
) -> HttpResponseBase:
    files = list(images or []) + list(image or [])
    if not files:
        raise invalid(
            "Send at least one image as 'image' or 'image[]'.",
            param="image",
            code="missing_required_parameter",
        )
    # Counts and sizes first, from what was sent; then the decoding, in a worker thread, off the event loop.
    params = openai_params.parse(
        fields.model_dump(exclude_none=True), input_images=len(files), has_mask=mask is not None
    )
    references, submitted_mask = await sync_to_async(_checked_inputs, thread_sensitive=False)(files, mask)
    generation = await submit_before_waiting(
        request, _submit, caller_of(request), params, references, submitted_mask, idempotency_key(request)
    )
    return await _answer(request, generation.pk, params, event_prefix="image_edit")


def _checked_inputs(
    files: list[UploadedFile], mask: UploadedFile | None
) -> tuple[list[SubmittedImage], SubmittedImage | None]:
    references = [SubmittedImage(image=_checked(upload, "image")) for upload in files]
    if mask is None:
        return references, None
    checked_mask = _checked(mask, "mask")
    try:
        check_mask(checked_mask, cast(CheckedImage, references[0].image))
    except ImageProblem as error:
        raise invalid(str(error), param="mask") from error
    return references, SubmittedImage(image=checked_mask)


def _checked(upload: UploadedFile, param: str) -> CheckedImage:
    """An uploaded image, its size checked before it is read and its content before it is decoded."""
    if (upload.size or 0) > MAX_INPUT_BYTES:
        raise invalid(
            f"{upload.name}: the image is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB.", param=param
        )
    try:
        return check_image(upload.read())
    except ImageProblem as error:
        raise invalid(f"{upload.name}: {error}", param=param) from error


@router.get("/v1/models", response={200: ModelList, **ERRORS}, url_name="openai-models")
def models(request: HttpRequest) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 1776729600, "owned_by": "studio"}
            for name in openai_params.MODEL_ALIASES
        ],
    }


IMAGE_FILE = {
    "responses": {
        200: {
            "description": "The image",
            "content": {f"image/{name}": {"schema": {"type": "string", "format": "binary"}}
                        for name in spec_module.OUTPUT_FORMATS},
        }
    }
}  # fmt: skip


@router.get(
    "/v1/files/{token}", auth=None, response={404: Error}, url_name="image-link", openapi_extra=IMAGE_FILE
)
def image_link(request: HttpRequest, token: str) -> FileResponse:
    """A signed link handed out with `response_format=url`: no key needed until it expires."""
    image_id = links.image_id_from_token(token)
    image = Image.objects.filter(pk=image_id).first() if image_id else None
    if image is None:
        raise Http404
    response = FileResponse(image.file.open("rb"), content_type=image.content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


async def _answer(
    request: HttpRequest, generation_id: UUID, params: openai_params.ImagesRequest, *, event_prefix: str
) -> HttpResponseBase:
    if params.stream:
        stream = StreamingHttpResponse(
            _event_stream(request, generation_id, params, event_prefix), content_type="text/event-stream"
        )
        stream["Cache-Control"] = "no-cache"
        stream["X-Accel-Buffering"] = "no"
        stream["X-Request-Id"] = str(generation_id)
        return stream
    generation = None
    async for generation in watch(generation_id):  # noqa: B007  (the last one is the finished one)
        pass
    if generation is None:  # watch always yields the generation at least once
        raise RuntimeError(f"generation {generation_id} was not found")
    if generation.status != Status.SUCCEEDED:
        return _failure(generation).response()
    body = await sync_to_async(_result_body, thread_sensitive=False)(request, generation, params)
    response = HttpResponse(encoded.dumps(body), content_type="application/json")
    response["X-Request-Id"] = str(generation.pk)
    if timing := generation.server_timing():
        response["Server-Timing"] = timing
    return response


def _failure(generation: Generation) -> ApiError:
    if generation.status == Status.CANCELED:
        return ApiError("The generation was canceled.", status=409, code="canceled")
    if generation.error_code in CLIENT_ERROR_CODES:
        return ApiError(generation.error, status=400, code=generation.error_code)
    if generation.error_code == "internal_error":
        return ApiError(generation.error, status=500, type="server_error", code="internal_error")
    return ApiError(
        generation.error, status=502, type="upstream_error", code=generation.error_code or "upstream_error"
    )


def _usage(generation: Generation) -> dict[str, Any]:
    usage = generation.usage or {}
    details = usage.get("details") or {}
    return {
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
        "input_tokens_details": {
            "text_tokens": details.get("text_tokens", 0),
            "image_tokens": details.get("image_tokens", 0),
        },
    }


def _read(field: FieldFile) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


def _image_item(
    request: HttpRequest, image: Image, generation: Generation, response_format: str
) -> dict[str, Any]:
    item: dict[str, Any] = {"revised_prompt": generation.revised_prompt or generation.prompt}
    if response_format == "url":
        item["url"] = request.build_absolute_uri(links.signed_path(image.pk))
    else:
        item["b64_json"] = encoded.Base64(_read(image.file))
    return item


def _result_body(
    request: HttpRequest, generation: Generation, params: openai_params.ImagesRequest
) -> dict[str, Any]:
    return {
        "created": int(generation.created_at.timestamp()),
        "data": [
            _image_item(request, image, generation, params.response_format)
            for image in generation.images.all()
        ],
        "size": generation.result_size,
        "quality": generation.result_quality or params.spec.quality,
        "output_format": generation.result_format or params.spec.output_format,
        "background": params.spec.background if params.spec.background != "auto" else "opaque",
        "usage": _usage(generation),
    }


def _sse(event_type: str, payload: dict[str, Any]) -> bytes:
    return (
        b"event: "
        + event_type.encode()
        + b"\ndata: "
        + encoded.dumps({"type": event_type, **payload})
        + b"\n\n"
    )


async def _event_stream(
    request: HttpRequest, generation_id: UUID, params: openai_params.ImagesRequest, prefix: str
) -> AsyncIterator[bytes]:
    """OpenAI's image streaming events: partial images as they come, then one completed event per image."""
    sent_partials = 0
    spec = params.spec
    async for generation in watch(generation_id):
        common = {
            "created_at": int(generation.created_at.timestamp()),
            "size": generation.result_size or spec.api_size,
            "quality": generation.result_quality or spec.quality,
            "background": spec.background if spec.background != "auto" else "opaque",
            "output_format": generation.result_format or spec.output_format,
        }
        if (
            generation.status == Status.RUNNING
            and generation.partial_count > sent_partials
            and generation.partial_image
        ):
            try:
                data = await sync_to_async(_read, thread_sensitive=False)(generation.partial_image)
            except FileNotFoundError:
                data = None  # already replaced by a newer partial; that one follows
            if data:
                sent_partials = generation.partial_count
                payload = {
                    **common,
                    "b64_json": encoded.Base64(data),
                    "partial_image_index": sent_partials - 1,
                }
                yield _sse(f"{prefix}.partial_image", payload)
        if generation.status == Status.SUCCEEDED:
            for image in generation.images.all():
                data = await sync_to_async(_read, thread_sensitive=False)(image.file)
                payload = {**common, "b64_json": encoded.Base64(data), "usage": _usage(generation)}
                yield _sse(f"{prefix}.completed", payload)
        elif not generation.is_active:
            yield _sse("error", {"error": _failure(generation).as_dict()["error"]})
