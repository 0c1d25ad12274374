"""The sinancode dialect: `POST /v1/generate/k/gpt-image-2-image-to-image` (image to image, with
`input_urls`, aspect ratios and 1K/2K/4K) and `GET /v1/tasks/{id}`."""

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema
from pydantic import StrictBool

from studio.api.auth import caller_of
from studio.api.schemas import ERRORS, Error, Request, Url
from studio.api.submission import base_url, is_finished_badly, result_urls, submit, task_for
from studio.engine import spec as spec_module
from studio.models import Generation, Source, Status

router = Router(tags=["sinancode"])

RATIOS = ("auto", "1:1", "5:4", "9:16", "21:9", "16:9", "4:3", "3:2", "4:5", "3:4", "2:3")
STATUSES: dict[str, str] = {
    Status.QUEUED: "pending",
    Status.RUNNING: "processing",
    Status.SUCCEEDED: "succeeded",
    Status.FAILED: "failed",
    Status.CANCELED: "failed",
}
PROMPT_MAX_CHARS = 20_000


class ImageToImage(Request):
    input_urls: list[Url] = Field(..., min_length=1, max_length=spec_module.MAX_INPUT_IMAGES)
    prompt: str = Field(..., min_length=1, max_length=PROMPT_MAX_CHARS)
    aspect_ratio: Literal[RATIOS] | None = "auto"  # type: ignore[valid-type]
    nsfw_checker: StrictBool = True
    resolution: Literal["1K", "2K", "4K"] | None = "1K"


class Created(Schema):
    task_id: str


class TaskStatus(Schema):
    id: str
    status: Literal["pending", "processing", "succeeded", "failed"]
    error_code: str
    error_msg: str
    result: list[str]


def task_status(generation: Generation, base: str) -> dict[str, Any]:
    failed = is_finished_badly(generation)
    return {
        "id": str(generation.pk),
        "status": STATUSES[generation.status],
        "error_code": (generation.error_code or generation.status) if failed else "",
        "error_msg": generation.error if failed else "",
        "result": result_urls(generation, base) if generation.status == Status.SUCCEEDED else [],
    }


@router.post(
    "/v1/generate/k/gpt-image-2-image-to-image",
    response={200: Created, 402: Error, **ERRORS},
    url_name="sinancode-create",
)
def image_to_image(request: HttpRequest, body: ImageToImage) -> dict[str, Any]:
    ratio, resolution = body.aspect_ratio or "auto", body.resolution or "1K"
    if ratio == "auto" and resolution != "1K":
        ratio = "1:1"  # auto lets the model choose at 1K only; a square keeps the asked-for resolution
    generation = submit(
        request,
        caller_of(request),
        spec_fields={
            "prompt": body.prompt,
            "aspect_ratio": ratio,
            "resolution": resolution,
            # The NSFW check maps to the model's moderation: on is the default "auto", off is "low".
            "moderation": "auto" if body.nsfw_checker else "low",
            "partial_images": 0,
        },
        references=body.input_urls,
        mask=None,
        source=Source.SINANCODE,
    )
    return {"task_id": str(generation.pk)}


@router.get("/v1/tasks/{task_id}", response={200: TaskStatus, **ERRORS}, url_name="sinancode-status")
def get_task(request: HttpRequest, task_id: str) -> dict[str, Any]:
    return task_status(task_for(caller_of(request), task_id), base_url(request))
