"""Task APIs: create a task, get its id at once, then poll (or receive a webhook) until it ends.

Four dialects share one engine: the studio's native task API, and the request and answer shapes of three
GPT-Image-2 services (sjinn, sinancode, givon), so their clients work by changing only the base URL and key.
Every task charges like the page, refunds on failure, and appears in the key's workspace gallery, marked
with its dialect.
"""

import json
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.ledger import InsufficientCredits
from studio.api import links
from studio.api.auth import Caller, authenticate
from studio.api.errors import ApiError, insufficient_credits, invalid, not_found
from studio.api.image_refs import resolve_image, resolve_images
from studio.models import Generation, Source, Status
from studio.services import generation_submit
from studio.spec import GenerationSpec, SpecError

logger = logging.getLogger(__name__)

# --- shared ---------------------------------------------------------------------------------------------


def _json_body(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError as error:
        raise invalid("The body must be JSON.", code="invalid_json") from error
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.", code="invalid_json")
    return data


def _own_hosts(request: HttpRequest) -> set[str]:
    hosts = {request.get_host().rpartition(":")[0] or request.get_host()}
    hosts |= {host.lstrip(".") for host in settings.ALLOWED_HOSTS if host != "*"}
    return {host.lower().strip("[]") for host in hosts}


def _build_spec(**fields) -> GenerationSpec:
    try:
        return GenerationSpec.build(**fields)
    except SpecError as error:
        param, message = next(iter(error.errors.items()))
        raise invalid(message, param=param) from error


def _submit(
    request: HttpRequest,
    caller: Caller,
    *,
    spec_fields: dict,
    references: list | None,
    mask: str | None,
    source: str,
    callback_url: str = "",
) -> Generation:
    workspace = caller.membership.workspace
    hosts = _own_hosts(request)
    submitted = resolve_images(references, workspace=workspace, own_hosts=hosts, param="images")
    submitted_mask = resolve_image(mask, workspace=workspace, own_hosts=hosts, param="mask") if mask else None
    if submitted_mask is not None and not submitted:
        raise invalid("A mask needs a source image.", param="mask")
    spec = _build_spec(**spec_fields, input_images=len(submitted), has_mask=submitted_mask is not None)
    if callback_url:
        from studio.fetch import FetchRefused, check_url

        try:
            if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
                check_url(callback_url)
        except FetchRefused as error:
            raise invalid(f"callback: {error}", param="callback_url", code="url_refused") from error
    try:
        return generation_submit(
            membership=caller.membership,
            spec=spec,
            references=submitted,
            mask=submitted_mask,
            idempotency_key=request.headers.get("Idempotency-Key", "")[:100],
            source=source,
            api_key=caller.key,
            callback_url=callback_url,
        )
    except InsufficientCredits as error:
        raise insufficient_credits(error.needed, error.balance) from error
    except PermissionDenied as error:
        raise ApiError(str(error), status=403, type="permission_error", code="forbidden") from error


def _task_for(caller: Caller, task_id: str) -> Generation:
    """A task of the key's workspace; any other id, or another workspace's, is not found."""
    try:
        generation = (
            Generation.objects.filter(pk=task_id, workspace=caller.membership.workspace)
            .prefetch_related("images")
            .first()
        )
    except Exception:  # not a UUID
        generation = None
    if generation is None:
        raise not_found("No such task.")
    return generation


def result_urls(generation: Generation, base_url: str) -> list[str]:
    return [base_url.rstrip("/") + links.signed_path(image.pk) for image in generation.images.all()]


def progress(generation: Generation) -> int:
    if not generation.is_active:
        return 100
    if generation.status == Status.QUEUED:
        return 0
    expected = max(1, generation.spec.get("partial_images") or 0)
    return min(95, 10 + 80 * generation.partial_count // expected)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


# --- native: /api/v1/tasks -----------------------------------------------------------------------------

NATIVE_STATUS = {Status.QUEUED: "queued", Status.RUNNING: "running", Status.SUCCEEDED: "succeeded"}


def native_status(generation: Generation, base_url: str) -> dict:
    error = None
    if generation.status in (Status.FAILED, Status.CANCELED):
        error = {
            "code": generation.error_code or generation.status,
            "message": generation.error or "Canceled.",
        }
    return {
        "id": str(generation.pk),
        "object": "task",
        "status": generation.status,
        "progress": progress(generation),
        "stage": generation.stage,
        "error": error,
        "result": {"urls": result_urls(generation, base_url)}
        if generation.status == Status.SUCCEEDED
        else None,
        "cost": generation.cost,
        "created_at": _iso(generation.created_at),
        "finished_at": _iso(generation.finished_at),
    }


NATIVE_FIELDS = (
    "prompt", "aspect_ratio", "resolution", "size", "quality", "n", "output_format", "output_compression",
    "background", "moderation", "partial_images",
)  # fmt: skip


@csrf_exempt
def native_tasks(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return ApiError("Use POST to create a task.", status=405, code="method_not_allowed").response()
    try:
        caller = authenticate(request)
        data = _json_body(request)
        unknown = sorted(set(data) - set(NATIVE_FIELDS) - {"images", "mask", "callback_url"})
        if unknown:
            raise invalid(f"Unknown parameter '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")
        generation = _submit(
            request,
            caller,
            spec_fields={name: data[name] for name in NATIVE_FIELDS if name in data},
            references=data.get("images"),
            mask=data.get("mask"),
            source=Source.TASKS,
            callback_url=str(data.get("callback_url") or ""),
        )
    except ApiError as error:
        return error.response()
    return JsonResponse(native_status(generation, request.build_absolute_uri("/")), status=202)


@require_GET
def native_task(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        caller = authenticate(request)
        generation = _task_for(caller, task_id)
    except ApiError as error:
        return error.response()
    return JsonResponse(native_status(generation, request.build_absolute_uri("/")))


# --- sjinn: /api/un-api/create_tool_task, /api/un-api/query_tool_task_status ----------------------------

SJINN_RATIOS = ("auto", "1:1", "16:9", "9:16", "3:2", "2:3")
SJINN_TOOL = "gpt-image-2-api"
SJINN_STATUS = {
    Status.QUEUED: "pending",
    Status.RUNNING: "processing",
    Status.SUCCEEDED: "completed",
    Status.FAILED: "failed",
    Status.CANCELED: "failed",
}


def _sjinn(data: dict | None = None, *, error: ApiError | None = None) -> JsonResponse:
    if error is not None:
        # The dialect reports errors in the body; the HTTP status still tells auth and money problems apart.
        status = error.status if error.status in (401, 402, 429) else 200
        body = {"success": False, "errorMsg": error.message, "error_code": error.status}
        return JsonResponse(body, status=status)
    return JsonResponse({"success": True, "errorMsg": "", "error_code": 0, "data": data})


def sjinn_status(generation: Generation, base_url: str) -> dict:
    return {
        "task_id": str(generation.pk),
        "status": SJINN_STATUS[generation.status],
        "progress": progress(generation),
        "output_urls": result_urls(generation, base_url) if generation.status == Status.SUCCEEDED else [],
        "error": generation.error if generation.status in (Status.FAILED, Status.CANCELED) else "",
    }


@csrf_exempt
@require_POST
def sjinn_create(request: HttpRequest) -> JsonResponse:
    try:
        caller = authenticate(request)
        data = _json_body(request)
        if data.get("tool_type") != SJINN_TOOL:
            raise invalid(f"tool_type must be {SJINN_TOOL}")
        task_input = data.get("input") if isinstance(data.get("input"), dict) else {}
        prompt = task_input.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid("prompt is required")
        image_list = task_input.get("image_list") or []
        if not isinstance(image_list, list) or not all(isinstance(url, str) and url for url in image_list):
            raise invalid("image_list must be an array of non-empty URLs")
        ratio = task_input.get("aspect_ratio")
        ratio = ratio if ratio in SJINN_RATIOS else "auto"  # documented: anything else falls back to auto
        generation = _submit(
            request,
            caller,
            spec_fields={"prompt": prompt, "aspect_ratio": ratio, "partial_images": 0},
            references=image_list,
            mask=None,
            source=Source.SJINN,
        )
    except ApiError as error:
        return _sjinn(error=error)
    return _sjinn({"task_id": str(generation.pk)})


@csrf_exempt
@require_POST
def sjinn_query(request: HttpRequest) -> JsonResponse:
    try:
        caller = authenticate(request)
        task_id = _json_body(request).get("task_id")
        if not task_id:
            raise invalid("task_id is required")
        generation = _task_for(caller, str(task_id))
    except ApiError as error:
        return _sjinn(error=error)
    return _sjinn(sjinn_status(generation, request.build_absolute_uri("/")))


# --- sinancode: /v1/generate/k/gpt-image-2-image-to-image, /v1/tasks/{id} --------------------------------

SINANCODE_RATIOS = ("auto", "1:1", "5:4", "9:16", "21:9", "16:9", "4:3", "3:2", "4:5", "3:4", "2:3")
SINANCODE_STATUS = {
    Status.QUEUED: "pending",
    Status.RUNNING: "processing",
    Status.SUCCEEDED: "succeeded",
    Status.FAILED: "failed",
    Status.CANCELED: "failed",
}
SINANCODE_MAX_BYTES = 30 * 1024 * 1024


def sinancode_status(generation: Generation, base_url: str) -> dict:
    failed = generation.status in (Status.FAILED, Status.CANCELED)
    return {
        "id": str(generation.pk),
        "status": SINANCODE_STATUS[generation.status],
        "error_code": (generation.error_code or generation.status) if failed else "",
        "error_msg": generation.error if failed else "",
        "result": result_urls(generation, base_url) if generation.status == Status.SUCCEEDED else [],
    }


@csrf_exempt
def sinancode_create(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return ApiError("Use POST to create a task.", status=405, code="method_not_allowed").response()
    try:
        caller = authenticate(request)
        data = _json_body(request)
        input_urls = data.get("input_urls")
        if not isinstance(input_urls, list) or not input_urls:
            raise invalid("input_urls is required: at least one image URL.", param="input_urls")
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= 20_000:
            raise invalid("prompt is required, 1 to 20000 characters.", param="prompt")
        ratio = data.get("aspect_ratio") or "auto"
        if ratio not in SINANCODE_RATIOS:
            raise invalid(f"aspect_ratio must be one of {', '.join(SINANCODE_RATIOS)}.", param="aspect_ratio")
        resolution = data.get("resolution") or "1K"
        if resolution not in ("1K", "2K", "4K"):
            raise invalid("resolution must be 1K, 2K or 4K.", param="resolution")
        nsfw_checker = data.get("nsfw_checker", True)
        if not isinstance(nsfw_checker, bool):
            raise invalid("nsfw_checker must be a boolean.", param="nsfw_checker")
        if ratio == "auto" and resolution != "1K":
            ratio = "1:1"  # auto lets the model choose at 1K only; a square keeps the asked-for resolution
        generation = _submit(
            request,
            caller,
            spec_fields={
                "prompt": prompt,
                "aspect_ratio": ratio,
                "resolution": resolution,
                # The NSFW check maps to the model's moderation: on is the default "auto", off is "low".
                "moderation": "auto" if nsfw_checker else "low",
                "partial_images": 0,
            },
            references=input_urls,
            mask=None,
            source=Source.SINANCODE,
        )
    except ApiError as error:
        return error.response()
    return JsonResponse({"task_id": str(generation.pk)})


@require_GET
def sinancode_task(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        caller = authenticate(request)
        generation = _task_for(caller, task_id)
    except ApiError as error:
        return error.response()
    return JsonResponse(sinancode_status(generation, request.build_absolute_uri("/")))


# --- givon: /api/v1/generations, /api/v1/generations/{id} ----------------------------------------------

GIVON_RATIOS = ("1:1", "2:3", "3:2", "4:3", "3:4", "4:5", "5:4", "16:9", "9:16", "21:9")
GIVON_STATUS = {
    Status.QUEUED: "queued",
    Status.RUNNING: "processing",
    Status.SUCCEEDED: "completed",
    Status.FAILED: "failed",
    Status.CANCELED: "canceled",
}


def givon_status(generation: Generation, base_url: str) -> dict:
    failed = generation.status in (Status.FAILED, Status.CANCELED)
    return {
        "id": str(generation.pk),
        "type": "image",
        "model": "gpt-image-2",
        "status": GIVON_STATUS[generation.status],
        "progress": progress(generation),
        "output": (
            {"images": [{"url": url} for url in result_urls(generation, base_url)]}
            if generation.status == Status.SUCCEEDED
            else None
        ),
        "error": {"code": generation.error_code or generation.status, "message": generation.error}
        if failed
        else None,
        "createdAt": _iso(generation.created_at),
        "completedAt": _iso(generation.finished_at),
    }


@csrf_exempt
def givon_generations(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return ApiError("Use POST to create a generation.", status=405, code="method_not_allowed").response()
    try:
        caller = authenticate(request)
        data = _json_body(request)
        if data.get("type", "image") != "image":
            raise invalid("type must be image.", param="type")
        if data.get("model", "gpt-image-2") != "gpt-image-2":
            raise invalid("model must be gpt-image-2.", param="model", code="model_not_found")
        task_input = data.get("input")
        if not isinstance(task_input, dict):
            raise invalid("input is required.", param="input")
        ratio = task_input.get("aspectRatio") or "9:16"
        if ratio not in GIVON_RATIOS:
            raise invalid(f"aspectRatio must be one of {', '.join(GIVON_RATIOS)}.", param="aspectRatio")
        quality = task_input.get("quality") or "medium"
        if quality not in ("low", "medium", "high"):
            raise invalid("quality must be low, medium or high.", param="quality")
        size = task_input.get("imageSize") or "1K"
        if size not in ("1K", "2K", "4K"):
            raise invalid("imageSize must be 1K, 2K or 4K.", param="imageSize")
        source_image, mask = task_input.get("sourceImage"), task_input.get("maskImage")
        if mask and not source_image:
            raise invalid("maskImage requires sourceImage.", param="maskImage")
        references = task_input.get("referenceAssetUris") or []
        if not isinstance(references, list):
            raise invalid("referenceAssetUris must be a list.", param="referenceAssetUris")
        images = ([source_image] if source_image else []) + references
        generation = _submit(
            request,
            caller,
            spec_fields={
                "prompt": task_input.get("prompt"),
                "aspect_ratio": ratio,
                "resolution": size,
                "quality": quality,
                "partial_images": 0,
            },
            references=images,
            mask=mask,
            source=Source.GIVON,
            callback_url=str(data.get("callbackUrl") or ""),
        )
    except ApiError as error:
        return error.response()
    return JsonResponse(givon_status(generation, request.build_absolute_uri("/")), status=201)


@require_GET
def givon_generation(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        caller = authenticate(request)
        generation = _task_for(caller, task_id)
    except ApiError as error:
        return error.response()
    return JsonResponse(givon_status(generation, request.build_absolute_uri("/")))


# --- webhooks ------------------------------------------------------------------------------------------

STATUS_FORMATS: dict[str, Callable[[Generation, str], dict]] = {
    Source.TASKS: native_status,
    Source.SJINN: sjinn_status,
    Source.SINANCODE: sinancode_status,
    Source.GIVON: givon_status,
}


def webhook_payload(generation: Generation) -> dict:
    """The task's final status in its own dialect's shape."""
    formatter = STATUS_FORMATS.get(generation.source, native_status)
    return {"event": "task.finished", "task_id": str(generation.pk), "sent_at": _iso(timezone.now()),
            "task": formatter(generation, settings.SITE_URL)}  # fmt: skip
