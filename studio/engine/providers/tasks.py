"""Task-style image services: sjinn (`gpt-image-2-api`), sinancode (image to image) and givon. Each takes a
task and is asked later how it went; its images are then downloaded through the SSRF guard.

Where a service's document leaves the status call out, the shape is the one this studio serves for that
dialect (`studio.api.sjinn`, `studio.api.sinancode`, `studio.api.givon`), so one studio can draw from another:
- sjinn: `POST /api/un-api/create_tool_task`, then `POST /api/un-api/query_tool_task_status` with the task id,
  answered `{"success", "errorMsg", "error_code", "data": {"status", "progress", "output_urls", "error"}}`.
- sinancode: `POST /v1/generate/k/gpt-image-2-image-to-image`, then `GET /v1/tasks/{id}`, answered
  `{"id", "status", "error_code", "error_msg", "result": [urls]}`.
- givon: `POST /api/v1/generations` (201 with the generation), then `GET /api/v1/generations/{id}`, answered
  `{"id", "status", "progress", "output": {"images": [{"url"}]}, "error": {"code", "message"}}`.

Each task makes one image, so a spec for n images makes n tasks. A service takes input images as public URLs
(sjinn, sinancode: the studio's own signed links, `InputImage.url`) or as `data:` URIs (givon). What a
service cannot express (a size it has no ratio for, a mask, a quality it does not let one choose) it does not
serve: the pool gives such a spec to another account (`can_serve`).

No Django here: plain values in, plain values out.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from PIL import Image as PillowImage

from studio.engine import spec as spec_module
from studio.engine.fetch import Limits, fetch_image
from studio.engine.images import ImageProblem
from studio.engine.outbound import OutboundRefused
from studio.engine.providers.base import (
    DAMAGED_IMAGE_MESSAGE,
    MODERATION_MESSAGE,
    Completed,
    FinalImage,
    InputImage,
    ProviderError,
    Rejected,
    TaskState,
    Transient,
    classify_failure,
    retry_after_seconds,
    trace_headers,
)
from studio.engine.providers.local import encode
from studio.engine.spec import GenerationSpec

# What a failed task's error code says about the request itself (retrying will not help).
REJECTED_TASK_CODES = frozenset(
    {"moderation_blocked", "content_policy_violation", "invalid_request", "invalid_value", "input_refused"}
)
TASK_FAILED_MESSAGE = "The image service could not make the image. Try again."
NO_PUBLIC_URL_REASON = (
    "it takes input images only as links, and the studio has no public URL (STUDIO_PUBLIC_URL)"
)


@functools.cache
def _client(timeout_seconds: float) -> httpx.Client:
    """One client per process: its pool of connections is shared by every task in flight."""
    return httpx.Client(
        timeout=timeout_seconds,
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        follow_redirects=False,
    )


class TaskServiceProvider:
    """What the three task services share: HTTP with a bearer key, errors sorted into rejected, transient
    and account trouble, result downloads, and the format conversion."""

    name = ""
    # The aspect ratios it can be asked for, and whether a spec without one ("auto") can go.
    ratios: tuple[str, ...] = ()
    tiers: tuple[str, ...] = spec_module.RESOLUTIONS
    # Quality is a knob of the service, or else the spec must leave it to the model (medium or auto).
    chooses_quality = False
    takes_mask = False
    needs_input_image = False
    inputs_as_links = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout_seconds: float = 30,
        public_links: bool = True,
    ):
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        # Whether the studio can hand out links to its own media (it has a public URL).
        self.public_links = public_links

    # What it serves --------------------------------------------------------------------------------------

    def can_serve(self, spec: GenerationSpec) -> str | None:
        if spec.size:
            return "it is asked by aspect ratio and resolution, not by an exact size"
        if spec.aspect_ratio not in self.ratios:
            return f"it has no {spec.aspect_ratio} aspect ratio"
        if spec.resolution not in self.tiers:
            return f"it makes no {spec.resolution} images"
        if not self.chooses_quality and spec.quality not in ("medium", "auto"):
            return f"it does not let one choose {spec.quality} quality"
        if spec.has_mask and not self.takes_mask:
            return "it takes no mask"
        if self.needs_input_image and not spec.input_images:
            return "it only edits images"
        if spec.input_images and self.inputs_as_links and not self.public_links:
            return NO_PUBLIC_URL_REASON
        return None

    # Tasks -----------------------------------------------------------------------------------------------

    def create(self, spec: GenerationSpec, *, images: list[InputImage], mask: InputImage | None) -> list[str]:
        if problem := self.can_serve(spec):
            raise Rejected(f"This image service cannot make this request: {problem}.", code="unsupported")
        if self.inputs_as_links and any(not image.url for image in images):
            raise Rejected(
                f"This image service cannot be used: {NO_PUBLIC_URL_REASON}.", code="not_configured"
            )
        body = self._create_body(spec, images, mask)
        return [self._task_id(self._call("POST", self._create_path(), json=body)) for _ in range(spec.n)]

    def poll(self, task_id: str) -> TaskState:
        return self._state(self._status(task_id))

    def results(self, spec: GenerationSpec, states: list[TaskState]) -> Completed:
        finals = []
        for state in states:
            if not state.result_urls:
                raise Transient("The image service finished without an image. Try again.", code="no_image")
            try:
                checked = fetch_image(
                    state.result_urls[0],
                    limits=Limits(max_bytes=100 * 1024 * 1024),
                    trusted_origin=self.base_url,
                )
            except OutboundRefused as refused:
                raise Transient(
                    f"The image could not be downloaded from the image service: {refused}",
                    code="download_failed",
                ) from refused
            finals.append(FinalImage(data=_in_format(checked.data, checked.format, spec)))
        return Completed(
            images=finals,
            size=spec.api_size,
            quality=spec.quality,
            output_format=spec.output_format,
            background=spec.background,
        )

    # The dialect ---------------------------------------------------------------------------------------

    def _create_path(self) -> str:
        raise NotImplementedError

    def _create_body(self, spec: GenerationSpec, images: list[InputImage], mask: InputImage | None) -> dict:
        raise NotImplementedError

    def _task_id(self, answer: dict[str, Any]) -> str:
        raise NotImplementedError

    def _status(self, task_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def _state(self, answer: dict[str, Any]) -> TaskState:
        raise NotImplementedError

    # HTTP ------------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json: dict | None = None) -> dict[str, Any]:
        try:
            response = _client(self.timeout_seconds).request(
                method,
                self.base_url + path,
                json=json,
                headers={
                    "Authorization": f"Bearer {self.api_key}",
                    "Accept": "application/json",
                    **trace_headers(),
                },
            )
        except httpx.TimeoutException as error:
            raise Transient(
                "The image service took too long to answer. Try again.", code="timeout"
            ) from error
        except httpx.HTTPError as error:
            raise Transient(
                "The studio could not reach the image service. Try again.", code="connection_error"
            ) from error
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if response.is_success:
                raise Transient(
                    "The image service sent an answer the studio could not read.", code="invalid_response"
                )
            answer = {}
        if not response.is_success or self._failed_in_body(answer):
            raise self._failure(response, answer)
        return answer

    def _failed_in_body(self, answer: dict[str, Any]) -> bool:
        return False

    def _failure(self, response: httpx.Response, answer: dict[str, Any]) -> ProviderError:
        """An error answer in OpenAI's shape, `{"error": {"message", "type", "code"}}` (sinancode, givon)."""
        error = _dict(answer.get("error"))
        return _classified(
            status=response.status_code,
            code=_text(error.get("code")),
            error_type=_text(error.get("type")),
            message=_text(error.get("message")),
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )


def _classified(
    *, status: int, code: str, error_type: str, message: str, retry_after: float | None
) -> ProviderError:
    if status == 402:
        # A task service's own credits are spent: this account cannot serve until it is topped up.
        code, error_type = "insufficient_quota", "insufficient_quota"
    return classify_failure(
        code=code,
        error_type=error_type,
        status=status,
        upstream_message=message,
        request_id="",
        retry_after=retry_after,
    )


def task_failed(code: str, message: str) -> ProviderError:
    """A task the service reports as failed: a refusal of the request, or a failure worth another try."""
    if code == "moderation_blocked":
        return Rejected(MODERATION_MESSAGE, code=code)
    if code in REJECTED_TASK_CODES:
        return Rejected(message or "The image service rejected the request.", code=code)
    return Transient(message or TASK_FAILED_MESSAGE, code=code or "task_failed")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _progress(value: object) -> int:
    return max(0, min(100, value)) if isinstance(value, int) and not isinstance(value, bool) else 0


def _data_uri(image: InputImage) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"


def _in_format(data: bytes, made_format: str, spec: GenerationSpec) -> bytes:
    """The image in the format the spec asks for (services that cannot be asked send PNG)."""
    if made_format == spec.output_format and spec.output_compression is None:
        return data
    try:
        with PillowImage.open(io.BytesIO(data)) as image:
            image.load()
            return encode(image, spec.output_format, spec.output_compression)
    except (OSError, ValueError, ImageProblem) as error:
        raise Transient(DAMAGED_IMAGE_MESSAGE, code="invalid_image") from error


class SjinnProvider(TaskServiceProvider):
    name = "sjinn"
    ratios = ("auto", "1:1", "16:9", "9:16", "3:2", "2:3")
    tiers = ("1K",)  # the tool has no resolution parameter

    def _failed_in_body(self, answer: dict[str, Any]) -> bool:
        return answer.get("success") is False

    def _failure(self, response: httpx.Response, answer: dict[str, Any]) -> ProviderError:
        # sjinn reports errors in the body; its error_code is the HTTP status it means.
        code = answer.get("error_code")
        status = code if isinstance(code, int) and 400 <= code < 600 else response.status_code
        if status < 400:
            status = 400
        return _classified(
            status=status,
            code="",
            error_type="",
            message=_text(answer.get("errorMsg")),
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )

    def _create_path(self) -> str:
        return "/api/un-api/create_tool_task"

    def _create_body(self, spec: GenerationSpec, images: list[InputImage], mask: InputImage | None) -> dict:
        task_input: dict[str, Any] = {"prompt": spec.prompt, "aspect_ratio": spec.aspect_ratio}
        if images:
            task_input["image_list"] = [image.url for image in images]
        return {"tool_type": "gpt-image-2-api", "input": task_input}

    def _task_id(self, answer: dict[str, Any]) -> str:
        data = answer.get("data")
        return _required_id(data.get("task_id") if isinstance(data, dict) else None)

    def _status(self, task_id: str) -> dict[str, Any]:
        return self._call("POST", "/api/un-api/query_tool_task_status", json={"task_id": task_id})

    def _state(self, answer: dict[str, Any]) -> TaskState:
        data = _dict(answer.get("data"))
        status = _text(data.get("status"))
        if status == "completed":
            return TaskState(done=True, progress=100, result_urls=_urls(data.get("output_urls")))
        if status == "failed":
            raise task_failed("", _text(data.get("error")))
        return TaskState(done=False, progress=_progress(data.get("progress")))


class SinancodeProvider(TaskServiceProvider):
    name = "sinancode"
    ratios = ("auto", "1:1", "5:4", "9:16", "21:9", "16:9", "4:3", "3:2", "4:5", "3:4", "2:3")
    needs_input_image = True  # image to image: input_urls has at least one

    def can_serve(self, spec: GenerationSpec) -> str | None:
        if len(spec.prompt) > 20_000:
            return "its prompts are at most 20,000 characters"
        return super().can_serve(spec)

    def _create_path(self) -> str:
        return "/v1/generate/k/gpt-image-2-image-to-image"

    def _create_body(self, spec: GenerationSpec, images: list[InputImage], mask: InputImage | None) -> dict:
        return {
            "input_urls": [image.url for image in images],
            "prompt": spec.prompt,
            "aspect_ratio": spec.aspect_ratio,
            "resolution": spec.resolution,
            # Its NSFW check is the model's moderation: "low" turns it off.
            "nsfw_checker": spec.moderation != "low",
        }

    def _task_id(self, answer: dict[str, Any]) -> str:
        return _required_id(answer.get("task_id"))

    def _status(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/tasks/{quote(task_id, safe='')}")

    def _state(self, answer: dict[str, Any]) -> TaskState:
        status = _text(answer.get("status"))
        if status == "succeeded":
            return TaskState(done=True, progress=100, result_urls=_urls(answer.get("result")))
        if status == "failed":
            raise task_failed(_text(answer.get("error_code")), _text(answer.get("error_msg")))
        return TaskState(done=False, progress=50 if status == "processing" else 0)


class GivonProvider(TaskServiceProvider):
    name = "givon"
    ratios = ("1:1", "2:3", "3:2", "4:3", "3:4", "4:5", "5:4", "16:9", "9:16", "21:9")
    chooses_quality = True
    takes_mask = True
    inputs_as_links = False  # it takes data: URIs

    def _create_path(self) -> str:
        return "/api/v1/generations"

    def _create_body(self, spec: GenerationSpec, images: list[InputImage], mask: InputImage | None) -> dict:
        task_input: dict[str, Any] = {
            "prompt": spec.prompt,
            "aspectRatio": spec.aspect_ratio,
            "imageSize": spec.resolution,
        }
        if spec.quality != "auto":
            task_input["quality"] = spec.quality
        if images:
            task_input["sourceImage"] = _data_uri(images[0])
            if images[1:]:
                task_input["referenceAssetUris"] = [_data_uri(image) for image in images[1:]]
        if mask is not None:
            task_input["maskImage"] = _data_uri(mask)
        return {"type": "image", "model": "gpt-image-2", "input": task_input}

    def _task_id(self, answer: dict[str, Any]) -> str:
        return _required_id(answer.get("id"))

    def _status(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/generations/{quote(task_id, safe='')}")

    def _state(self, answer: dict[str, Any]) -> TaskState:
        status = _text(answer.get("status"))
        if status == "completed":
            output = _dict(answer.get("output"))
            images = _list(output.get("images"))
            urls = [image.get("url") for image in images if isinstance(image, dict)]
            return TaskState(done=True, progress=100, result_urls=_urls(urls))
        if status in ("failed", "canceled"):
            error = _dict(answer.get("error"))
            raise task_failed(_text(error.get("code")), _text(error.get("message")))
        return TaskState(done=False, progress=_progress(answer.get("progress")))


def _required_id(value: object) -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()[:200]
    raise Transient("The image service accepted the task without saying its id.", code="invalid_response")


def _urls(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)


TASK_PROVIDERS: dict[str, Callable[..., TaskServiceProvider]] = {
    "sjinn": SjinnProvider,
    "sinancode": SinancodeProvider,
    "givon": GivonProvider,
}
