"""The studio's native task API: `POST /api/v1/tasks` takes any field of the generation spec and answers 202
with the task at once; `GET /api/v1/tasks/{id}` tells its status; a `callback_url` gets a signed webhook."""

from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema
from ninja.responses import Status as Answer
from pydantic import ConfigDict

from studio.api.auth import caller_of
from studio.api.schemas import ERRORS, Error, Request, Url
from studio.api.submission import base_url, is_finished_badly, iso, progress, result_urls, submit, task_for
from studio.engine import spec as spec_module
from studio.models import Generation, Source, Status

router = Router(tags=["Tasks (native)"])


class TaskRequest(Request):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=spec_module.PROMPT_MAX_CHARS)
    aspect_ratio: Literal[spec_module.ASPECT_RATIOS] | None = None  # type: ignore[valid-type]
    resolution: Literal[spec_module.RESOLUTIONS] | None = None  # type: ignore[valid-type]
    size: str | None = Field(None, max_length=20, description="WIDTHxHEIGHT instead of ratio and resolution")
    quality: Literal[spec_module.QUALITIES] | None = None  # type: ignore[valid-type]
    n: int | None = Field(None, ge=1, le=spec_module.MAX_IMAGES)
    output_format: Literal[spec_module.OUTPUT_FORMATS] | None = None  # type: ignore[valid-type]
    output_compression: int | None = Field(None, ge=0, le=100)
    background: Literal[spec_module.BACKGROUNDS] | None = None  # type: ignore[valid-type]
    moderation: Literal[spec_module.MODERATIONS] | None = None  # type: ignore[valid-type]
    partial_images: int | None = Field(None, ge=0, le=spec_module.MAX_PARTIAL_IMAGES)
    images: list[Url] | None = Field(
        None, max_length=spec_module.MAX_INPUT_IMAGES, description="asset://ID, data: URIs or http(s) URLs"
    )
    mask: Url | None = None
    callback_url: Url | None = None


class TaskError(Schema):
    code: str
    message: str


class TaskResult(Schema):
    urls: list[str]


class Task(Schema):
    id: str
    object: Literal["task"]
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    progress: int
    stage: str
    error: TaskError | None
    result: TaskResult | None
    cost: int
    created_at: str | None
    finished_at: str | None


SPEC_FIELDS = (
    "prompt", "aspect_ratio", "resolution", "size", "quality", "n", "output_format", "output_compression",
    "background", "moderation", "partial_images",
)  # fmt: skip


def task_status(generation: Generation, base: str) -> dict[str, Any]:
    error = None
    if is_finished_badly(generation):
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
        "result": {"urls": result_urls(generation, base)} if generation.status == Status.SUCCEEDED else None,
        "cost": generation.cost,
        "created_at": iso(generation.created_at),
        "finished_at": iso(generation.finished_at),
    }


@router.post("/api/v1/tasks", response={202: Task, 402: Error, **ERRORS}, url_name="tasks-create")
def create_task(request: HttpRequest, body: TaskRequest) -> Answer:
    given = body.model_dump(exclude_none=True)
    generation = submit(
        request,
        caller_of(request),
        spec_fields={name: given[name] for name in SPEC_FIELDS if name in given},
        references=body.images,
        mask=body.mask,
        source=Source.TASKS,
        callback_url=body.callback_url or "",
    )
    return Answer(202, task_status(generation, base_url(request)))


@router.get("/api/v1/tasks/{task_id}", response={200: Task, **ERRORS}, url_name="tasks-status")
def get_task(request: HttpRequest, task_id: str, response: HttpResponse) -> dict[str, Any]:
    generation = task_for(caller_of(request), task_id)
    if timing := generation.server_timing():
        response["Server-Timing"] = timing
    return task_status(generation, base_url(request))
