"""At most WEB_CONCURRENCY requests of one web process in Django at once; the others wait their turn.

Django runs each request's sync code on a thread of its own, so a burst of a thousand requests makes a
thousand threads that fight over the GIL and over the database pool: measured with benches/load.py, 782 of
1,000 concurrent submissions then timed out waiting for a connection (503) and the rest took 14 s. Waiting
in line costs a coroutine, not a thread: a request waits here (in arrival order, asyncio's semaphore is
fair) up to WEB_QUEUE_TIMEOUT_SECONDS, then is answered 503 with Retry-After, in the API's error shape
under /v1/ and /api/. The health routes skip the line, so a busy node is not taken for a dead one.

Requests that wait for their image (the OpenAI and Responses routes: their async views hold a request open,
awaiting, no thread, while the image is drawn) take their place in line for their sync part only: they
submit through `studio.api.submission.submit_before_waiting`, which leaves the line once submitted.
Letting them skip the line instead made a thousand of them at once a thousand threads fighting over the
pool of twenty connections: 786 of 1,000 were answered 503 (benches/submit.py).
"""

import asyncio
from typing import Any

from django.conf import settings

Scope = dict[str, Any]
UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")


# The scope key of the callable that gives the request's place back (studio.api.submission.leave_line).
LEAVE_LINE = "studio.leave_line"


class AdmissionLimit:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS or settings.WEB_CONCURRENCY <= 0:
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # made on the server's event loop
            self._semaphore = asyncio.Semaphore(settings.WEB_CONCURRENCY)
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=settings.WEB_QUEUE_TIMEOUT_SECONDS)
        except TimeoutError:
            await _busy(scope, send)
            return
        semaphore, left = self._semaphore, False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                semaphore.release()

        try:
            await self.app({**scope, LEAVE_LINE: leave}, receive, send)
        finally:
            leave()


async def _busy(scope: Scope, send: Any) -> None:
    from config.daphne import _refusal
    from studio.api import errors

    busy = errors.unavailable()
    response = _refusal(scope["path"], busy.status, busy.code or "service_unavailable", busy.message)
    response["Retry-After"] = str(errors.RETRY_AFTER_SECONDS)
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})
