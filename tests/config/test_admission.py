"""config.admission: at most WEB_CONCURRENCY requests in Django at once; the rest wait their turn, and one
that waits past WEB_QUEUE_TIMEOUT_SECONDS is answered 503 with Retry-After in the API's shape. Health never
waits in line; the image routes (which hold a request open while an image is drawn) leave it once they have
submitted."""

import asyncio
import json

import pytest

from config.admission import AdmissionLimit
from studio.api.submission import leave_line


class SlowApp:
    """An ASGI app that answers 200 after `delay` seconds, counting how many requests it holds at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inside = 0
        self.most_inside = 0

    async def __call__(self, scope, receive, send) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        await asyncio.sleep(self.delay)
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app, path: str) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await app({"type": "http", "path": path}, None, send)
    headers = {name.decode(): value.decode() for name, value in sent[0].get("headers", [])}
    return sent[0]["status"], headers, sent[1]["body"]


def test_requests_beyond_the_limit_wait_their_turn(settings):
    settings.WEB_CONCURRENCY, settings.WEB_QUEUE_TIMEOUT_SECONDS = 3, 5
    inner = SlowApp(0.05)
    app = AdmissionLimit(inner)

    async def burst():
        return await asyncio.gather(*(call(app, "/api/v1/tasks") for _ in range(20)))

    answers = asyncio.run(burst())
    assert [status for status, _, _ in answers] == [200] * 20
    assert inner.most_inside == 3


def test_a_request_waiting_too_long_is_answered_503_in_the_api_shape(settings):
    settings.WEB_CONCURRENCY, settings.WEB_QUEUE_TIMEOUT_SECONDS = 1, 0.1
    app = AdmissionLimit(SlowApp(0.5))

    async def two():
        return await asyncio.gather(
            call(app, "/api/v1/tasks"), call(app, "/api/v1/tasks"), call(app, "/gallery/")
        )

    first, second, page = asyncio.run(two())
    assert first[0] == 200
    assert second[0] == 503 and second[1]["Retry-After"] == "5"
    assert json.loads(second[2])["error"]["code"] == "service_unavailable"
    assert (
        json.loads(second[2])["error"]["type"] == "server_error"
    )  # the studio is busy, not the request wrong
    assert page[0] == 503 and b"too busy" in page[2]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_never_waits_in_line(settings, path):
    settings.WEB_CONCURRENCY, settings.WEB_QUEUE_TIMEOUT_SECONDS = 1, 0.05
    inner = SlowApp(0.2)
    app = AdmissionLimit(inner)

    async def burst():
        return await asyncio.gather(*(call(app, path) for _ in range(5)))

    assert [status for status, _, _ in asyncio.run(burst())] == [200] * 5
    assert inner.most_inside == 5


class SubmitThenWait(SlowApp):
    """Like an OpenAI image view: a short sync part in line (submitting), then a long wait out of it."""

    def __init__(self) -> None:
        super().__init__(delay=0.3)
        self.submitting = 0
        self.most_submitting = 0

    async def __call__(self, scope, receive, send) -> None:
        self.submitting += 1
        self.most_submitting = max(self.most_submitting, self.submitting)
        await asyncio.sleep(0.01)
        self.submitting -= 1
        request = type("Request", (), {"scope": scope})()
        leave_line(request)
        leave_line(request)  # a second call gives back nothing more
        await super().__call__(scope, receive, send)


def test_a_request_waiting_for_its_image_leaves_the_line_once_submitted(settings):
    settings.WEB_CONCURRENCY, settings.WEB_QUEUE_TIMEOUT_SECONDS = 2, 5
    inner = SubmitThenWait()
    app = AdmissionLimit(inner)

    async def burst():
        return await asyncio.gather(*(call(app, "/v1/images/generations") for _ in range(20)))

    assert [status for status, _, _ in asyncio.run(burst())] == [200] * 20
    assert inner.most_submitting == 2  # the sync parts, two at a time
    assert inner.most_inside == 20  # the waits, all at once
    assert app._semaphore._value == 2  # every place given back exactly once
