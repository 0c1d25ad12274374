"""How Daphne receives a request, for the studio. Imported by config.asgi when Daphne serves it.

- Twisted parses every multipart body itself by default: it reads all of it into memory once more, and
  answers a bare 400, before Django sees the request, to one it cannot parse. Daphne never uses what it
  parsed (Django parses the body, and answers a bad one in the API's error shape), so it is turned off.
- Twisted receives a body into a temporary file, then Daphne queues all of it, in memory, for the
  application. A body over its route's cap is refused (413) from the file's size, before it is queued, so
  a 200 MB upload costs disk for a moment and no memory. The routes that take image uploads (the composer,
  the API's edits) take up to REQUEST_MAX_BYTES; every other route up to DATA_UPLOAD_MAX_MEMORY_SIZE, what
  Django would read of a non-file body anyway. Each image keeps its own 50 MB limit on top.
- Twisted drops the connection, with no answer, on a request line over 16 KiB, and answers a bare 400 to
  headers over 16 KiB in all or over 500 in number. The studio answers 414 (URI Too Long) and 431 (Request
  Header Fields Too Large) instead, in the API's error shape under /v1/ and /api/, then closes the connection.
"""

from typing import IO, Any

from daphne import http_protocol
from django.conf import settings
from django.http import HttpResponse
from twisted.web import http

UPLOAD_PATHS = ("/generate/", "/v1/images/edits")


def body_limit(path: str) -> int:
    if path in UPLOAD_PATHS:
        return settings.REQUEST_MAX_BYTES
    return min(settings.REQUEST_MAX_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _size(content: IO[bytes]) -> int:
    size = content.seek(0, 2)
    content.seek(0)
    return size


def _refusal(path: str, status: int, code: str, message: str) -> HttpResponse:
    from studio.api import errors  # the project package answers in the API's shapes

    if path.startswith(("/v1/", "/api/")):
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return errors.response_for_path(path, errors.ApiError(message, status=status, code=code, type=kind))
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _too_large(path: str, size: int) -> HttpResponse:
    limit = body_limit(path)
    message = f"The request is {size:,} bytes: at most {limit:,} bytes are accepted."
    return _refusal(path, 413, "request_too_large", message)


def _serialised(response: HttpResponse) -> bytes:
    """A whole HTTP/1.1 response closing the connection, for a request Twisted could not finish reading."""
    response["Connection"] = "close"
    response["Content-Length"] = str(len(response.content))
    head = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
    head += [f"{name}: {value}" for name, value in response.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.content


def _path_of(line: bytes) -> str:
    """The path of a (perhaps cut) request line, for choosing the error's shape."""
    parts = line.split(b" ", 2)
    target = parts[1] if len(parts) > 1 else b""
    return target.decode("latin-1").split("?")[0]


class StudioRequest(http_protocol.WebRequest):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    def process(self) -> None:
        size = _size(self.content) if self.content is not None else 0
        path = self.path.decode("latin-1").split("?")[0]
        if size <= body_limit(path):
            super().process()
            return
        response = _too_large(path, size)
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
        self.handle_reply({"type": "http.response.start", "status": response.status_code, "headers": headers})
        self.handle_reply({"type": "http.response.body", "body": response.content})


class StudioChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 connection: over-long request lines and headers answered, not dropped."""

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted's own flag: set while it waits for a request's first line (reset after every request).
        if self._HTTPChannel__first_line:  # type: ignore[attr-defined]
            self._refuse(_path_of(line), 414, "uri_too_long", "The request line is too long.")
        else:
            self._headers_too_large()

    def _respondToBadRequestAndDisconnect(self) -> None:
        if self._receivedHeaderSize > self.totalHeadersSize or self._receivedHeaderCount > self.maxHeaders:
            self._headers_too_large()
            return
        super()._respondToBadRequestAndDisconnect()

    def _headers_too_large(self) -> None:
        self._refuse(self._current_path(), 431, "headers_too_large", "The request's headers are too large.")

    def _current_path(self) -> str:
        # Twisted's parsed request target, once the request line has been read.
        return getattr(self, "_path", b"").decode("latin-1").split("?")[0]

    def _refuse(self, path: str, status: int, code: str, message: str) -> None:
        limits = f" At most {self.totalHeadersSize:,} bytes of request line and headers are read."
        transport: Any = self.transport
        transport.write(_serialised(_refusal(path, status, code, message + limits)))
        self.loseConnection()


def _channel(factory: http.HTTPFactory) -> http._GenericHTTPChannelProtocol:
    return http._GenericHTTPChannelProtocol(StudioChannel())


def install() -> None:
    # Daphne's protocol factory builds its requests from this name, once per connection.
    http_protocol.WebRequest = StudioRequest
    # Twisted's factory builds each connection's protocol with this function (its own wraps an HTTPChannel).
    http_protocol.HTTPFactory.protocol = _channel
