"""The sjinn dialect (tool `gpt-image-2-api`): `POST /api/un-api/create_tool_task` and
`POST /api/un-api/query_tool_task_status`. Answers and errors are wrapped as sjinn's clients read them:
`{"success", "errorMsg", "error_code", "data"}`; an unsupported aspect ratio falls back to `auto`, as
documented."""

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema

from studio.api.auth import caller_of
from studio.api.errors import invalid
from studio.api.schemas import Request, Url
from studio.api.submission import base_url, is_finished_badly, progress, result_urls, submit, task_for
from studio.engine import spec as spec_module
from studio.models import Generation, Source, Status

router = Router(tags=["sjinn"])

RATIOS = ("auto", "1:1", "16:9", "9:16", "3:2", "2:3")
TOOL = "gpt-image-2-api"
STATUSES: dict[str, str] = {
    Status.QUEUED: "pending",
    Status.RUNNING: "processing",
    Status.SUCCEEDED: "completed",
    Status.FAILED: "failed",
    Status.CANCELED: "failed",
}


class ToolInput(Request):
    prompt: str = Field(..., max_length=spec_module.PROMPT_MAX_CHARS)
    image_list: list[Url] = Field(default_factory=list, max_length=spec_module.MAX_INPUT_IMAGES)
    aspect_ratio: str | None = Field(None, max_length=20, description=f"{', '.join(RATIOS)}; else auto")


class CreateToolTask(Request):
    tool_type: str = Field(..., max_length=100, description=f"Always {TOOL}")
    input: ToolInput


class QueryToolTask(Request):
    task_id: str = Field(..., max_length=100)


class Created(Schema):
    task_id: str


class TaskStatus(Schema):
    task_id: str
    status: Literal["pending", "processing", "completed", "failed"]
    progress: int
    output_urls: list[str]
    error: str


class Answer(Schema):
    success: bool
    errorMsg: str
    error_code: int
    data: TaskStatus | Created | None = None


class Failure(Schema):
    success: Literal[False]
    errorMsg: str
    error_code: int


FAILURES: dict[int, type[Schema]] = {status: Failure for status in (401, 402, 405, 413, 415, 429, 500)}


def _answer(data: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "errorMsg": "", "error_code": 0, "data": data}


def task_status(generation: Generation, base: str) -> dict[str, Any]:
    return {
        "task_id": str(generation.pk),
        "status": STATUSES[generation.status],
        "progress": progress(generation),
        "output_urls": result_urls(generation, base) if generation.status == Status.SUCCEEDED else [],
        "error": generation.error if is_finished_badly(generation) else "",
    }


@router.post(
    "/api/un-api/create_tool_task",
    response={200: Answer | Failure, **FAILURES},
    url_name="sjinn-create",
)
def create_tool_task(request: HttpRequest, body: CreateToolTask) -> dict[str, Any]:
    if body.tool_type != TOOL:
        raise invalid(f"tool_type must be {TOOL}")
    if not body.input.prompt.strip():
        raise invalid("prompt is required")
    if not all(body.input.image_list):
        raise invalid("image_list must be an array of non-empty URLs")
    ratio = body.input.aspect_ratio if body.input.aspect_ratio in RATIOS else "auto"
    generation = submit(
        request,
        caller_of(request),
        spec_fields={"prompt": body.input.prompt, "aspect_ratio": ratio, "partial_images": 0},
        references=body.input.image_list,
        mask=None,
        source=Source.SJINN,
    )
    return _answer({"task_id": str(generation.pk)})


@router.post(
    "/api/un-api/query_tool_task_status",
    response={200: Answer | Failure, **FAILURES},
    url_name="sjinn-query",
)
def query_tool_task_status(request: HttpRequest, body: QueryToolTask) -> dict[str, Any]:
    if not body.task_id:
        raise invalid("task_id is required")
    generation = task_for(caller_of(request), body.task_id)
    return _answer(task_status(generation, base_url(request)))
