"""A fake OpenAI Images API: a real HTTP server on 127.0.0.1, so the real SDK and httpx run end to end.

It answers `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart), plainly or as SSE
with partial images, and can be told to misbehave the ways the real service does (errors, stalls, cut
streams, damaged images). Every request is recorded so tests can count attempts and inspect what was sent.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import email.parser
import email.policy
import io
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from PIL import Image

FAILURE_MODES = (
    "500",
    "429_rate_limit",
    "429_insufficient_quota",
    "400_moderation_blocked",
    "400_invalid_request",
    "401_invalid_api_key",
    "timeout",
    "cut_stream",
    "stream_without_completed",
    # After one partial image, an `error` event: nested `{"type": "error", "error": {...}}`, or flat with
    # the fields beside `type`. Both report a moderation block on the output.
    "stream_error_event",
    "stream_error_event_flat",
    "invalid_base64",
)

_STREAM_ERROR = {
    "type": "image_generation_user_error",
    "code": "moderation_blocked",
    "message": "The generated image was flagged by the safety system.",
    "param": None,
}

# The error bodies the real service sends, as (status, error object).
_ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "500": (
        500,
        {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        },
    ),
    "429_rate_limit": (
        429,
        {
            "message": "Rate limit reached for gpt-image-2 on images per minute. Please try again in 12s.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        },
    ),
    "429_insufficient_quota": (
        429,
        {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        },
    ),
    "400_moderation_blocked": (
        400,
        {
            "message": "Your request was rejected by the safety system.",
            "type": "image_generation_user_error",
            "param": None,
            "code": "moderation_blocked",
        },
    ),
    "400_invalid_request": (
        400,
        {
            "message": "Invalid value for 'size': the longest edge must be at most 3840 pixels.",
            "type": "invalid_request_error",
            "param": "size",
            "code": "invalid_value",
        },
    ),
    "401_invalid_api_key": (
        401,
        {
            "message": "Incorrect API key provided: test. You can find your API key at the dashboard.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        },
    ),
}

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_PARTIAL_COLOURS = [(40, 40, 40), (90, 90, 90), (140, 140, 140), (190, 190, 190)]
_FINAL_COLOURS = [(200, 30, 30), (30, 160, 60), (30, 60, 200), (220, 180, 20)]


@dataclass
class UploadedFile:
    name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    # Non-file multipart fields, as sent (strings).
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    failure: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The request parameters, whichever encoding carried them."""
        return self.json if self.json is not None else self.fields

    @property
    def field_names(self) -> list[str]:
        return [*self.fields, *(upload.name for upload in self.files)]

    @property
    def image_parts(self) -> int:
        return sum(1 for upload in self.files if upload.name in ("image[]", "image"))

    @property
    def has_mask(self) -> bool:
        return any(upload.name == "mask" for upload in self.files)


def make_image(size: tuple[int, int], output_format: str, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, _PIL_FORMATS.get(output_format, "PNG"))
    return buffer.getvalue()


def _parse_size(value: str) -> tuple[int, int]:
    if "x" in value:
        width, height = value.lower().split("x", 1)
        if width.isdigit() and height.isdigit():
            return int(width), int(height)
    # "auto": the real model picks; square is as good a pick as any.
    return 1024, 1024


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 refuses a burst of concurrent clients
    daemon_threads = True

    def __init__(self, upstream: FakeUpstream):
        self.upstream = upstream
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        # Handler threads parked on keep-alive reads or stalled answers would otherwise outlive the server.
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Keep test output quiet.

    def do_GET(self) -> None:
        """GET /v1/models, as the admin's "Test connection" asks; the queued failure modes apply."""
        upstream = self.server.upstream
        recorded = RecordedRequest(
            method="GET", path=self.path, headers={key.lower(): value for key, value in self.headers.items()}
        )
        recorded.failure = upstream._take_failure()
        upstream._record(recorded)
        if self.path != "/v1/models":
            self._send_json(404, {"error": {"message": "Not found.", "type": "invalid_request_error"}})
        elif recorded.failure in _ERRORS:
            status, error = _ERRORS[recorded.failure]
            self._send_json(status, {"error": error})
        else:
            models = [
                {"id": name, "object": "model", "owned_by": "fake"} for name in ("gpt-image-2", "gpt-4.1")
            ]
            self._send_json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        upstream = self.server.upstream
        upstream._request_started()
        try:
            self._handle_post(upstream)
        finally:
            upstream._request_finished()

    def _handle_post(self, upstream: FakeUpstream) -> None:
        body = self.rfile.read(_as_int(self.headers.get("Content-Length"), 0))
        recorded = RecordedRequest(
            method="POST",
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
        )
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            recorded.fields, recorded.files = _parse_multipart(content_type, body)
        elif body:
            recorded.json = json.loads(body)
        recorded.failure = upstream._take_failure()
        upstream._record(recorded)

        if self.path not in ("/v1/images/generations", "/v1/images/edits"):
            self._send_json(404, {"error": {"message": "Not found.", "type": "invalid_request_error"}})
            return
        if recorded.failure == "timeout":
            # Accept and never answer; the stop event lets the thread go when the server stops.
            upstream._stopping.wait()
            self.close_connection = True
            return
        if upstream._stopping.wait(upstream.latency):
            self.close_connection = True
            return
        if recorded.failure in _ERRORS:
            status, error = _ERRORS[recorded.failure]
            headers = {"Retry-After": "1"} if recorded.failure == "429_rate_limit" else {}
            self._send_json(status, {"error": error}, headers)
            return

        params = recorded.params
        if _as_bool(params.get("stream")):
            self._answer_stream(recorded)
        else:
            self._answer_plain(recorded)

    def _request_id(self) -> str:
        return self.server.upstream._next_request_id()

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", self._request_id())
        self.end_headers()
        self.wfile.write(data)

    def _answer_plain(self, recorded: RecordedRequest) -> None:
        params = recorded.params
        size = _parse_size(str(params.get("size") or "auto"))
        output_format = str(params.get("output_format") or "png")
        n = _as_int(params.get("n"), 1)
        images = [
            base64.b64encode(make_image(size, output_format, _FINAL_COLOURS[index % 4])).decode()
            for index in range(n)
        ]
        if recorded.failure == "invalid_base64":
            images = ["this is not base64!" for _ in images]
        self._send_json(
            200,
            {
                "created": int(time.time()),
                "background": "opaque",
                "output_format": output_format,
                "quality": _answered_quality(params),
                "size": f"{size[0]}x{size[1]}",
                "data": [
                    {"b64_json": image, "revised_prompt": f"{params.get('prompt', '')} (revised)"}
                    for image in images
                ],
                "usage": _usage(recorded, n),
            },
        )

    def _answer_stream(self, recorded: RecordedRequest) -> None:
        upstream = self.server.upstream
        params = recorded.params
        kind = "image_edit" if recorded.path.endswith("/edits") else "image_generation"
        size = _parse_size(str(params.get("size") or "auto"))
        output_format = str(params.get("output_format") or "png")
        n = _as_int(params.get("n"), 1)
        asked = _as_int(params.get("partial_images"), 0)
        partials = asked if upstream.partial_images_sent is None else min(asked, upstream.partial_images_sent)
        common = {
            "size": f"{size[0]}x{size[1]}",
            "quality": _answered_quality(params),
            "background": "opaque",
            "output_format": output_format,
        }

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", self._request_id())
        self.end_headers()

        for index in range(partials):
            image = make_image(size, output_format, _PARTIAL_COLOURS[index % 4])
            self._send_event(
                f"{kind}.partial_image",
                {
                    "type": f"{kind}.partial_image",
                    "b64_json": base64.b64encode(image).decode(),
                    "partial_image_index": index,
                    "created_at": int(time.time()),
                    **common,
                },
            )
            if recorded.failure == "stream_error_event":
                self._send_event("error", {"type": "error", "error": _STREAM_ERROR})
                self._end_chunks()
                return
            if recorded.failure == "stream_error_event_flat":
                self._send_event("error", {**_STREAM_ERROR, "type": "error", "sequence_number": 2})
                self._end_chunks()
                return
            if recorded.failure == "cut_stream":
                # Close mid-body, without the final chunk: what a dropped connection looks like.
                self.wfile.flush()
                self.close_connection = True
                return
            if upstream._stopping.wait(upstream.event_gap):
                self.close_connection = True
                return

        if recorded.failure in ("cut_stream", "stream_without_completed"):
            # Asked for no partials, or told to end early: end the body cleanly with no completed event.
            self._end_chunks()
            return

        for index in range(n):
            image = make_image(size, output_format, _FINAL_COLOURS[index % 4])
            encoded = base64.b64encode(image).decode()
            if recorded.failure == "invalid_base64":
                encoded = "this is not base64!"
            self._send_event(
                f"{kind}.completed",
                {
                    "type": f"{kind}.completed",
                    "b64_json": encoded,
                    "created_at": int(time.time()),
                    # The whole request's usage rides on every completed event.
                    "usage": _usage(recorded, n),
                    **common,
                },
            )
        self._end_chunks()

    def _send_event(self, name: str, payload: dict[str, Any]) -> None:
        lines = [] if self.server.upstream.omit_event_lines else [f"event: {name}"]
        lines.append(f"data: {json.dumps(payload)}")
        self._send_chunk(("\n".join(lines) + "\n\n").encode())

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _answered_quality(params: dict[str, Any]) -> str:
    quality = str(params.get("quality") or "auto")
    return "medium" if quality == "auto" else quality


def _usage(recorded: RecordedRequest, n: int) -> dict[str, Any]:
    text_tokens = max(1, len(str(recorded.params.get("prompt", "")).split()))
    image_tokens = 65 * recorded.image_parts
    output_tokens = 272 * n
    return {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": output_tokens,
        "output_tokens_details": {"text_tokens": 0, "image_tokens": output_tokens},
        "total_tokens": text_tokens + image_tokens + output_tokens,
    }


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], list[UploadedFile]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    files: list[UploadedFile] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files.append(UploadedFile(str(name), filename, part.get_content_type(), payload))
        else:
            fields[str(name)] = payload.decode()
    return fields, files


class FakeUpstream:
    """The fake OpenAI Images API. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        event_gap: float = 0.0,
        partial_images_sent: int | None = None,
        omit_event_lines: bool = False,
    ):
        # Seconds before answering, and between SSE events.
        self.latency = latency
        self.event_gap = event_gap
        # At most this many partial images are sent, whatever was asked; None sends as many as asked.
        self.partial_images_sent = partial_images_sent
        # Some gateways send only `data:` lines; the event type then lives in the JSON `type` field.
        self.omit_event_lines = omit_event_lines
        self.requests: list[RecordedRequest] = []
        self._failures: collections.deque[str] = collections.deque()
        # A failure mode every request gets (after the queued ones), until fail_always(None).
        self._failing: str | None = None
        # Requests being answered now, and the most at once.
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._request_ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("The fake upstream is not running.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def fail_next(self, *modes: str) -> None:
        """Queue failure modes, consumed one per request; requests after the queue runs out succeed."""
        unknown = [mode for mode in modes if mode not in FAILURE_MODES]
        if unknown:
            raise ValueError(f"Unknown failure modes {unknown}; choose from {FAILURE_MODES}.")
        with self._lock:
            self._failures.extend(modes)

    def start(self) -> FakeUpstream:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-upstream",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _take_failure(self) -> str | None:
        with self._lock:
            return self._failures.popleft() if self._failures else self._failing

    def fail_always(self, mode: str | None) -> None:
        """Every request fails with `mode` (None: none do)."""
        if mode is not None and mode not in FAILURE_MODES:
            raise ValueError(f"Unknown failure mode {mode}; choose from {FAILURE_MODES}.")
        with self._lock:
            self._failing = mode

    def _request_started(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _request_finished(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _record(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _next_request_id(self) -> str:
        with self._lock:
            return f"req_fake_{next(self._request_ids):04d}"
