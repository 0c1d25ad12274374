"""The OpenAI Images API: POST /v1/images/generations, POST /v1/images/edits, GET /v1/models.

Any client written for OpenAI's API (the official SDKs included) works by changing the base URL and the key.
Requests run through the same queue and workers as the pages; this module only submits and relays.
"""

import base64
import json
import logging

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from accounts.ledger import InsufficientCredits
from studio.api import links, openai_params
from studio.api.auth import Caller, authenticate
from studio.api.errors import ApiError, insufficient_credits, invalid
from studio.api.watch import watch
from studio.images import ImageProblem, check_image, check_mask
from studio.models import Generation, Image, Source, Status
from studio.services import SubmittedImage, generation_submit

logger = logging.getLogger(__name__)

# How a failed generation is answered: what the client did wrong is a 4xx; the upstream failing is a 502.
CLIENT_ERROR_CODES = {"moderation_blocked", "invalid_request", "content_policy_violation"}


def _method_not_allowed(allowed: str) -> JsonResponse:
    error = ApiError(f"Use {allowed} for this endpoint.", status=405, code="method_not_allowed")
    response = error.response()
    response["Allow"] = allowed
    return response


def _submit(caller: Caller, request: openai_params.ImagesRequest, references, mask, idempotency_key: str):
    try:
        return generation_submit(
            membership=caller.membership,
            spec=request.spec,
            references=references,
            mask=mask,
            idempotency_key=idempotency_key,
            source=Source.API,
            api_key=caller.key,
        )
    except InsufficientCredits as error:
        raise insufficient_credits(error.needed, error.balance) from error
    except PermissionDenied as error:
        raise ApiError(str(error), status=403, type="permission_error", code="forbidden") from error


@csrf_exempt
async def images_generations(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed("POST")
    try:
        caller = await sync_to_async(authenticate)(request)
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as error:
            raise invalid("The body must be JSON.", code="invalid_json") from error
        if not isinstance(data, dict):
            raise invalid("The body must be a JSON object.", code="invalid_json")
        params = openai_params.parse(data)
        generation = await sync_to_async(_submit)(caller, params, [], None, _idempotency_key(request))
    except ApiError as error:
        return error.response()
    return await _answer(request, generation.pk, params, event_prefix="image_generation")


@csrf_exempt
async def images_edits(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed("POST")
    try:
        caller = await sync_to_async(authenticate)(request)
        files = request.FILES.getlist("image[]") + request.FILES.getlist("image")
        if not files:
            raise invalid(
                "Send at least one image as 'image' or 'image[]'.",
                param="image",
                code="missing_required_parameter",
            )
        references = [
            SubmittedImage(image=_checked(upload, "image"))
            for upload in files[: openai_params.MAX_INPUT_IMAGES + 1]
        ]
        mask = None
        if upload := request.FILES.get("mask"):
            checked_mask = _checked(upload, "mask")
            try:
                check_mask(checked_mask, references[0].image)
            except ImageProblem as error:
                raise invalid(str(error), param="mask") from error
            mask = SubmittedImage(image=checked_mask)
        params = openai_params.parse(request.POST.dict(), input_images=len(files), has_mask=mask is not None)
        generation = await sync_to_async(_submit)(caller, params, references, mask, _idempotency_key(request))
    except ApiError as error:
        return error.response()
    return await _answer(request, generation.pk, params, event_prefix="image_edit")


def _checked(upload, param: str):
    try:
        return check_image(upload.read())
    except ImageProblem as error:
        raise invalid(f"{upload.name}: {error}", param=param) from error


def _idempotency_key(request: HttpRequest) -> str:
    return request.headers.get("Idempotency-Key", "")[:100]


async def _answer(request: HttpRequest, generation_id, params, *, event_prefix: str) -> HttpResponse:
    if params.stream:
        response = StreamingHttpResponse(
            _event_stream(request, generation_id, params, event_prefix), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        response["X-Request-Id"] = str(generation_id)
        return response
    generation = None
    async for generation in watch(generation_id):  # noqa: B007  (the last one is the finished one)
        pass
    if generation.status != Status.SUCCEEDED:
        return _failure(generation).response()
    body = await sync_to_async(_result_body, thread_sensitive=False)(request, generation, params)
    response = JsonResponse(body)
    response["X-Request-Id"] = str(generation.pk)
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


def _usage(generation: Generation) -> dict:
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


def _read(field) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


def _image_item(request: HttpRequest, image: Image, generation: Generation, response_format: str) -> dict:
    item = {"revised_prompt": generation.revised_prompt or generation.prompt}
    if response_format == "url":
        item["url"] = request.build_absolute_uri(links.signed_path(image.pk))
    else:
        item["b64_json"] = base64.b64encode(_read(image.file)).decode()
    return item


def _result_body(request: HttpRequest, generation: Generation, params) -> dict:
    return {
        "created": int(generation.created_at.timestamp()),
        "data": [
            _image_item(request, image, generation, params.response_format) for image in generation.image_list
        ],
        "size": generation.result_size,
        "quality": generation.result_quality or params.spec.quality,
        "output_format": generation.result_format or params.spec.output_format,
        "background": params.spec.background if params.spec.background != "auto" else "opaque",
        "usage": _usage(generation),
    }


def _sse(event_type: str, payload: dict) -> bytes:
    return f"event: {event_type}\ndata: {json.dumps({'type': event_type, **payload})}\n\n".encode()


async def _event_stream(request: HttpRequest, generation_id, params, prefix: str):
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
                    "b64_json": base64.b64encode(data).decode(),
                    "partial_image_index": sent_partials - 1,
                }
                yield _sse(f"{prefix}.partial_image", payload)
        if generation.status == Status.SUCCEEDED:
            for image in generation.image_list:
                data = await sync_to_async(_read, thread_sensitive=False)(image.file)
                payload = {**common, "b64_json": base64.b64encode(data).decode(), "usage": _usage(generation)}
                yield _sse(f"{prefix}.completed", payload)
        elif not generation.is_active:
            yield _sse("error", {"error": _failure(generation).as_dict()["error"]})


@require_GET
def models(request: HttpRequest) -> JsonResponse:
    try:
        authenticate(request)
    except ApiError as error:
        return error.response()
    return JsonResponse(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 1776729600, "owned_by": "studio"}
                for name in openai_params.MODEL_ALIASES
            ],
        }
    )


@require_GET
def image_link(request: HttpRequest, token: str) -> FileResponse:
    """A signed link handed out with `response_format=url`: no session or key needed until it expires."""
    image_id = links.image_id_from_token(token)
    image = Image.objects.filter(pk=image_id).first() if image_id else None
    if image is None:
        raise Http404
    response = FileResponse(image.file.open("rb"), content_type=image.content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response
