"""Fake task-style GPT-Image-2 services (sjinn, sinancode, givon): a real HTTP server on 127.0.0.1 speaking
one service's documented protocol, with the status call in the shape the studio serves for that dialect.

A task is done after `polls_to_finish` status calls; its image is then served from the fake's own origin
(`/results/<task>.png`), as a service's CDN would. Input images given as links are downloaded when the task
is created, as the services do, and kept for the test. Failure modes are queued per create call or per task.
The fake counts the tasks outstanding (created, not yet reported done or failed) and the most at once.
"""

from __future__ import annotations

import base64
import collections
import io
import itertools
import json
import re
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from studio.engine.spec import size_for

KINDS = ("sjinn", "sinancode", "givon")
# What a create call can be told to answer instead of a task.
CREATE_FAILURES = ("401", "402", "429", "500", "400", "timeout")
# What a created task can be told to become.
TASK_FAILURES = ("failed", "moderation", "never_finishes", "foreign_result")

SJINN_RATIOS = ("auto", "1:1", "16:9", "9:16", "3:2", "2:3")
SINANCODE_RATIOS = ("auto", "1:1", "5:4", "9:16", "21:9", "16:9", "4:3", "3:2", "4:5", "3:4", "2:3")
GIVON_RATIOS = ("1:1", "2:3", "3:2", "4:3", "3:4", "4:5", "5:4", "16:9", "9:16", "21:9")
DATA_URI = re.compile(r"^data:image/(png|jpe?g|webp);base64,(.+)$", re.DOTALL)


@dataclass
class Task:
    id: str
    size: tuple[int, int]
    failure: str | None
    polls: int = 0
    finished: bool = False
    # The input images it was given, downloaded or decoded: (role, bytes).
    inputs: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None


def png(size: tuple[int, int], colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True

    def __init__(self, fake: FakeTaskService):
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        recorded = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, payload)
        fake._record(recorded)
        path = urlsplit(self.path).path
        if path.startswith("/results/"):
            self._send_result(path.removeprefix("/results/").removesuffix(".png"))
            return
        if recorded.headers.get("authorization") != f"Bearer {fake.api_key}":
            self._error(401, "Invalid API key.", "invalid_api_key")
            return
        route = fake.routes().get((method, re.sub(r"/[^/]+$", "/{id}", path) if method == "GET" else path))
        if route is None:
            self._error(404, f"No such endpoint: {method} {path}.", "not_found")
            return
        getattr(self, route)(payload if isinstance(payload, dict) else {}, path)

    # Answers -------------------------------------------------------------------------------------------

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        fake = self.server.fake
        if fake.kind == "sjinn":
            # sjinn answers errors in its envelope; error_code carries the HTTP status it means.
            self._json(
                200 if status < 500 else status,
                {"success": False, "errorMsg": message, "error_code": status},
                headers,
            )
        else:
            kind = "insufficient_quota" if status == 402 else "invalid_request_error"
            self._json(
                status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers
            )

    def _create_failure(self) -> bool:
        failure = self.server.fake._take_create_failure()
        if failure is None:
            return False
        if failure == "timeout":
            self.server.fake._stopping.wait(60)
            self.close_connection = True
        elif failure == "429":
            self._error(429, "Too many requests.", "rate_limited", {"Retry-After": "1"})
        elif failure == "402":
            self._error(402, "Insufficient credits.", "insufficient_credits")
        elif failure == "401":
            self._error(401, "Invalid API key.", "invalid_api_key")
        elif failure == "500":
            self._error(500, "Internal error.", "server_error")
        else:
            self._error(400, "prompt is required", "invalid_request")
        return True

    def _send_result(self, task_id: str) -> None:
        task = self.server.fake.tasks.get(task_id)
        if task is None or not task.finished:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = png(task.size)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # sjinn ---------------------------------------------------------------------------------------------

    def sjinn_create(self, payload: dict, path: str) -> None:
        task_input = payload.get("input") if isinstance(payload.get("input"), dict) else {}
        if payload.get("tool_type") != "gpt-image-2-api" or not str(task_input.get("prompt") or "").strip():
            self._error(400, "prompt is required", "invalid_request")
            return
        if self._create_failure():
            return
        ratio = task_input.get("aspect_ratio") if task_input.get("aspect_ratio") in SJINN_RATIOS else "auto"
        inputs = [("image", self._download(url)) for url in task_input.get("image_list") or []]
        task = self.server.fake._new_task(_size(ratio, "1K"), inputs)
        self._json(200, {"success": True, "errorMsg": "", "error_code": 0, "data": {"task_id": task.id}})

    def sjinn_status(self, payload: dict, path: str) -> None:
        task = self.server.fake._poll(str(payload.get("task_id") or ""))
        if task is None:
            self._error(404, "No such task.", "not_found")
            return
        status, urls, error = self._outcome(task, done="completed", running="processing")
        self._json(
            200,
            {
                "success": True,
                "errorMsg": "",
                "error_code": 0,
                "data": {
                    "task_id": task.id,
                    "status": status,
                    "progress": 100 if status == "completed" else min(90, 30 * task.polls),
                    "output_urls": urls,
                    "error": error[1],
                },
            },
        )

    # sinancode -----------------------------------------------------------------------------------------

    def sinancode_create(self, payload: dict, path: str) -> None:
        urls = payload.get("input_urls")
        prompt = str(payload.get("prompt") or "")
        if not isinstance(urls, list) or not urls or not prompt.strip() or len(prompt) > 20_000:
            self._error(400, "input_urls and prompt are required.", "invalid_request")
            return
        ratio, resolution = payload.get("aspect_ratio", "auto"), payload.get("resolution", "1K")
        if ratio not in SINANCODE_RATIOS or resolution not in ("1K", "2K", "4K"):
            self._error(400, "Invalid aspect_ratio or resolution.", "invalid_request")
            return
        if self._create_failure():
            return
        inputs = [("image", self._download(url)) for url in urls]
        task = self.server.fake._new_task(_size(ratio, resolution), inputs)
        self._json(200, {"task_id": task.id})

    def sinancode_status(self, payload: dict, path: str) -> None:
        task = self.server.fake._poll(path.rsplit("/", 1)[-1])
        if task is None:
            self._error(404, "No such task.", "not_found")
            return
        status, urls, error = self._outcome(task, done="succeeded", running="processing")
        self._json(
            200,
            {"id": task.id, "status": status, "error_code": error[0], "error_msg": error[1], "result": urls},
        )

    # givon ---------------------------------------------------------------------------------------------

    def givon_create(self, payload: dict, path: str) -> None:
        task_input = payload.get("input") if isinstance(payload.get("input"), dict) else {}
        ratio = task_input.get("aspectRatio", "9:16")
        size = task_input.get("imageSize", "1K")
        if (
            payload.get("model") != "gpt-image-2"
            or not str(task_input.get("prompt") or "").strip()
            or ratio not in GIVON_RATIOS
            or size not in ("1K", "2K", "4K")
            or task_input.get("quality", "medium") not in ("low", "medium", "high")
            or (task_input.get("maskImage") and not task_input.get("sourceImage"))
        ):
            self._error(400, "Invalid input.", "invalid_request")
            return
        if self._create_failure():
            return
        inputs = []
        for role in ("sourceImage", "maskImage"):
            if task_input.get(role):
                inputs.append((role, self._decode(task_input[role])))
        inputs += [("reference", self._decode(uri)) for uri in task_input.get("referenceAssetUris") or []]
        task = self.server.fake._new_task(_size(ratio, size), inputs)
        self._json(201, self._givon(task, "queued", [], ("", "")))

    def givon_status(self, payload: dict, path: str) -> None:
        task = self.server.fake._poll(path.rsplit("/", 1)[-1])
        if task is None:
            self._error(404, "No such generation.", "not_found")
            return
        status, urls, error = self._outcome(task, done="completed", running="processing")
        self._json(200, self._givon(task, status, urls, error))

    def _givon(self, task: Task, status: str, urls: list[str], error: tuple[str, str]) -> dict:
        return {
            "id": task.id,
            "type": "image",
            "model": "gpt-image-2",
            "status": status,
            "progress": 100 if status == "completed" else min(90, 30 * task.polls),
            "output": {"images": [{"url": url} for url in urls]} if status == "completed" else None,
            "error": {"code": error[0], "message": error[1]} if status == "failed" else None,
            "createdAt": None,
            "completedAt": None,
        }

    # Shared --------------------------------------------------------------------------------------------

    def _outcome(self, task: Task, *, done: str, running: str) -> tuple[str, list[str], tuple[str, str]]:
        fake = self.server.fake
        if task.failure == "never_finishes" or task.polls < fake.polls_to_finish:
            return (running if task.polls else "pending" if fake.kind != "givon" else "queued"), [], ("", "")
        fake._finish(task)
        if task.failure == "failed":
            return "failed", [], ("server_error", "The model failed to draw the image.")
        if task.failure == "moderation":
            return "failed", [], ("moderation_blocked", "Blocked by the safety system.")
        if task.failure == "foreign_result":
            # A result link on another private address: the studio must refuse to fetch it.
            return done, ["http://127.0.0.2:9/stolen.png"], ("", "")
        return done, [f"{fake.origin}/results/{task.id}.png"], ("", "")

    def _download(self, url: object) -> bytes:
        with urllib.request.urlopen(str(url), timeout=10) as response:
            return response.read()

    def _decode(self, uri: object) -> bytes:
        match = DATA_URI.match(str(uri))
        if match is None:
            raise ValueError(f"not a data URI: {str(uri)[:40]}")
        return base64.b64decode(match[2])


def _size(ratio: str, resolution: str) -> tuple[int, int]:
    return (1024, 1024) if ratio == "auto" else size_for(ratio, resolution)


class FakeTaskService:
    """One fake task service of `kind`, accepting `api_key`. Use as a context manager."""

    def __init__(self, kind: str, *, api_key: str = "task-key", polls_to_finish: int = 2):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.kind = kind
        self.api_key = api_key
        self.polls_to_finish = polls_to_finish
        self.requests: list[Recorded] = []
        self.tasks: dict[str, Task] = {}
        self.outstanding = 0
        self.peak_outstanding = 0
        self._create_failures: collections.deque[str] = collections.deque()
        self._task_failures: collections.deque[str] = collections.deque()
        self._failing_create: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def routes(self) -> dict[tuple[str, str], str]:
        return {
            "sjinn": {
                ("POST", "/api/un-api/create_tool_task"): "sjinn_create",
                ("POST", "/api/un-api/query_tool_task_status"): "sjinn_status",
            },
            "sinancode": {
                ("POST", "/v1/generate/k/gpt-image-2-image-to-image"): "sinancode_create",
                ("GET", "/v1/tasks/{id}"): "sinancode_status",
            },
            "givon": {
                ("POST", "/api/v1/generations"): "givon_create",
                ("GET", "/api/v1/generations/{id}"): "givon_status",
            },
        }[self.kind]

    @property
    def origin(self) -> str:
        assert self._server is not None, "the fake task service is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next_create(self, *modes: str) -> None:
        assert all(mode in CREATE_FAILURES for mode in modes), modes
        with self._lock:
            self._create_failures.extend(modes)

    def fail_every_create(self, mode: str | None) -> None:
        assert mode is None or mode in CREATE_FAILURES, mode
        with self._lock:
            self._failing_create = mode

    def fail_next_task(self, *modes: str) -> None:
        assert all(mode in TASK_FAILURES for mode in modes), modes
        with self._lock:
            self._task_failures.extend(modes)

    @property
    def creates(self) -> list[Recorded]:
        return [
            request for request in self.requests if request.method == "POST" and "status" not in request.path
        ]

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _take_create_failure(self) -> str | None:
        with self._lock:
            return self._create_failures.popleft() if self._create_failures else self._failing_create

    def _new_task(self, size: tuple[int, int], inputs: list[tuple[str, bytes]]) -> Task:
        with self._lock:
            failure = self._task_failures.popleft() if self._task_failures else None
            task = Task(
                id=f"{self.kind}-task-{next(self._ids):05d}", size=size, failure=failure, inputs=inputs
            )
            self.tasks[task.id] = task
            self.outstanding += 1
            self.peak_outstanding = max(self.peak_outstanding, self.outstanding)
            return task

    def _poll(self, task_id: str) -> Task | None:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is not None:
                task.polls += 1
            return task

    def _finish(self, task: Task) -> None:
        with self._lock:
            if not task.finished:
                task.finished = True
                self.outstanding -= 1

    def start(self) -> FakeTaskService:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-{self.kind}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeTaskService:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
