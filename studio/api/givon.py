"""The givon dialect: `POST /api/v1/generations` (`aspectRatio`, `quality`, `imageSize`, `sourceImage`,
`maskImage`, `referenceAssetUris`, `callbackUrl`), answered 201 with the generation, and
`GET /api/v1/generations/{id}`."""

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema
from ninja import Status as Answer

from studio.api.auth import caller_of
from studio.api.errors import invalid
from studio.api.schemas import ERRORS, Error, Request, Url
from studio.api.submission import base_url, is_finished_badly, iso, progress, result_urls, submit, task_for
from studio.engine import spec as spec_module
from studio.models import Generation, Source, Status

router = Router(tags=["givon"])

RATIOS = ("1:1", "2:3", "3:2", "4:3", "3:4", "4:5", "5:4", "16:9", "9:16", "21:9")
STATUSES: dict[str, str] = {
    Status.QUEUED: "queued",
    Status.RUNNING: "processing",
    Status.SUCCEEDED: "completed",
    Status.FAILED: "failed",
    Status.CANCELED: "canceled",
}


class GenerationInput(Request):
    prompt: str = Field(..., min_length=1, max_length=spec_module.PROMPT_MAX_CHARS)
    aspectRatio: Literal[RATIOS] | None = "9:16"  # type: ignore[valid-type]
    quality: Literal["low", "medium", "high"] | None = "medium"
    imageSize: Literal["1K", "2K", "4K"] | None = "1K"
    sourceImage: Url | None = None
    maskImage: Url | None = None
    referenceAssetUris: list[Url] = Field(default_factory=list, max_length=spec_module.MAX_INPUT_IMAGES - 1)


class CreateGeneration(Request):
    type: Literal["image"] = "image"
    model: str = Field("gpt-image-2", max_length=100, description="Always gpt-image-2")
    input: GenerationInput
    callbackUrl: Url | None = None


class OutputImage(Schema):
    url: str


class Output(Schema):
    images: list[OutputImage]


class GenerationError(Schema):
    code: str
    message: str


class GivonGeneration(Schema):
    id: str
    type: Literal["image"]
    model: Literal["gpt-image-2"]
    status: Literal["queued", "processing", "completed", "failed", "canceled"]
    progress: int
    output: Output | None
    error: GenerationError | None
    createdAt: str | None
    completedAt: str | None


def task_status(generation: Generation, base: str) -> dict[str, Any]:
    succeeded = generation.status == Status.SUCCEEDED
    return {
        "id": str(generation.pk),
        "type": "image",
        "model": "gpt-image-2",
        "status": STATUSES[generation.status],
        "progress": progress(generation),
        "output": {"images": [{"url": url} for url in result_urls(generation, base)]} if succeeded else None,
        "error": {"code": generation.error_code or generation.status, "message": generation.error}
        if is_finished_badly(generation)
        else None,
        "createdAt": iso(generation.created_at),
        "completedAt": iso(generation.finished_at),
    }


@router.post(
    "/api/v1/generations", response={201: GivonGeneration, 402: Error, **ERRORS}, url_name="givon-create"
)
def create_generation(request: HttpRequest, body: CreateGeneration) -> Answer:
    if body.model != "gpt-image-2":
        raise invalid("model must be gpt-image-2.", param="model", code="model_not_found")
    task_input = body.input
    if task_input.maskImage and not task_input.sourceImage:
        raise invalid("maskImage requires sourceImage.", param="maskImage")
    images = ([task_input.sourceImage] if task_input.sourceImage else []) + task_input.referenceAssetUris
    generation = submit(
        request,
        caller_of(request),
        spec_fields={
            "prompt": task_input.prompt,
            "aspect_ratio": task_input.aspectRatio or "9:16",
            "resolution": task_input.imageSize or "1K",
            "quality": task_input.quality or "medium",
            "partial_images": 0,
        },
        references=images,
        mask=task_input.maskImage,
        source=Source.GIVON,
        callback_url=body.callbackUrl or "",
    )
    return Answer(201, task_status(generation, base_url(request)))


@router.get(
    "/api/v1/generations/{task_id}", response={200: GivonGeneration, **ERRORS}, url_name="givon-status"
)
def get_generation(request: HttpRequest, task_id: str) -> dict[str, Any]:
    return task_status(task_for(caller_of(request), task_id), base_url(request))
