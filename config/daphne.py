"""How Daphne receives a request, for the studio. Imported by config.asgi when Daphne serves it.

- Twisted parses every multipart body itself by default: it reads all of it into memory once more, and
  answers a bare 400, before Django sees the request, to one it cannot parse. Daphne never uses what it
  parsed (Django parses the body, and answers a bad one in the API's error shape), so it is turned off.
- Twisted receives a body into a temporary file, then Daphne queues all of it, in memory, for the
  application. A body over its route's cap is refused (413) from the file's size, before it is queued, so
  a 200 MB upload costs disk for a moment and no memory. The routes that take image uploads (the composer,
  the API's edits) take up to REQUEST_MAX_BYTES; every other route up to DATA_UPLOAD_MAX_MEMORY_SIZE, what
  Django would read of a non-file body anyway. Each image keeps its own 50 MB limit on top.
"""

from typing import IO

from daphne import http_protocol
from django.conf import settings
from django.http import HttpResponse

UPLOAD_PATHS = ("/generate/", "/v1/images/edits")


def body_limit(path: str) -> int:
    if path in UPLOAD_PATHS:
        return settings.REQUEST_MAX_BYTES
    return min(settings.REQUEST_MAX_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _size(content: IO[bytes]) -> int:
    size = content.seek(0, 2)
    content.seek(0)
    return size


def _too_large(path: str, size: int) -> HttpResponse:
    from studio.api import errors  # the project package answers in the API's shapes

    limit = body_limit(path)
    message = f"The request is {size:,} bytes: at most {limit:,} bytes are accepted."
    if path.startswith(("/v1/", "/api/")):
        error = errors.ApiError(message, status=413, code="request_too_large")
        return errors.response_for_path(path, error)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


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


def install() -> None:
    # Daphne's protocol factory builds its requests from this name, once per connection.
    http_protocol.WebRequest = StudioRequest
