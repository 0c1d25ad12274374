"""Server-sent events, read fast: an image service's SSE stream carries each image as one base64 line of
several megabytes, and the openai SDK's decoder scans every byte of it with a regular expression under the
GIL (45 % of a busy worker's GIL time with a thousand generations in flight, by py-spy). Here lines are
found with `bytes.find` (memchr), and each event's JSON is read once.

Pure Python: what the providers read with it are plain objects (`Fields`) that answer attribute access
like the SDK's models, so the code that reads events works on either.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# An event this long is an image being received.
BIG_EVENT_BYTES = 256 * 1024


@functools.cache
def gate(size: int) -> threading.BoundedSemaphore:
    """The process's one gate of `size` places for images being read (see `json_events`)."""
    return threading.BoundedSemaphore(size)


class Fields:
    """A JSON object read by attribute (`event.type`, `event.usage.input_tokens`), as the SDK's models are;
    a missing field is None. `model_dump()` gives the object back."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        value = self._data.get(name)
        if isinstance(value, dict):
            return Fields(value)
        if isinstance(value, list):
            return [Fields(item) if isinstance(item, dict) else item for item in value]
        return value

    def model_dump(self) -> dict[str, Any]:
        return self._data

    def take(self, name: str) -> Any:
        """The field's value, removed from the event: an image's base64 text is then held by the caller alone,
        and freed when it is done with it rather than when the stream moves on."""
        return self._data.pop(name, None)

    def __repr__(self) -> str:
        return f"Fields({', '.join(sorted(self._data))})"


def lines(chunks: Iterable[bytes], *, on_big_line: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The lines of a byte stream, split at CR, LF or CRLF, however the chunks cut them. `on_big_line` is
    called (before more is read) once a line grows past BIG_EVENT_BYTES."""
    pending: list[bytes] = []
    pending_bytes = 0
    skip_lf = False
    for chunk in chunks:
        start, size = 0, len(chunk)
        if skip_lf and size:
            skip_lf = False
            if chunk[0] == 10:
                start = 1
        # The next CR and LF at or after `start`, each looked for again only once passed.
        next_lf = chunk.find(b"\n", start)
        next_cr = chunk.find(b"\r", start)
        while True:
            if next_lf != -1 and next_lf < start:
                next_lf = chunk.find(b"\n", start)
            if next_cr != -1 and next_cr < start:
                next_cr = chunk.find(b"\r", start)
            end = next_lf if next_cr == -1 else next_cr if next_lf == -1 else min(next_lf, next_cr)
            if end == -1:
                if start < size:
                    pending.append(chunk[start:])
                    pending_bytes += size - start
                    if on_big_line is not None and pending_bytes > BIG_EVENT_BYTES:
                        on_big_line()
                break
            pending.append(chunk[start:end])
            if on_big_line is not None and pending_bytes + end - start > BIG_EVENT_BYTES:
                on_big_line()
            yield _drain_bytes(pending)  # the pieces are let go before the line is read
            pending_bytes = 0
            start = end + 1
            if chunk[end] == 13:  # CR: a LF right after it belongs to the same line end
                if start < size:
                    if chunk[start] == 10:
                        start += 1
                else:
                    skip_lf = True
    if pending:
        yield _drain_bytes(pending)


def _drain_bytes(pieces: list[bytes]) -> bytes:
    joined = b"".join(pieces)
    pieces.clear()
    return joined


def _drain_text(pieces: list[str]) -> str:
    joined = "\n".join(pieces)
    pieces.clear()
    return joined


def events(
    chunks: Iterable[bytes], *, on_big_line: Callable[[], None] | None = None
) -> Iterator[tuple[str, str]]:
    """(event name, data) of each complete event; comments, ids and retry fields skipped.

    A multi-megabyte data line is decoded straight from the line (no copies of its bytes on the way), and
    nothing of an event is kept here once it is handed out, so the caller alone decides how long it lives."""
    name, data = "", list[str]()
    for line in lines(chunks, on_big_line=on_big_line):
        if not line:
            if data or name:
                yield name, _drain_text(data)
            name = ""
            continue
        if line.startswith(b":"):
            continue
        colon = line.find(b":")
        field = line if colon == -1 else line[:colon]
        start = len(line) if colon == -1 else colon + 1
        if line[start : start + 1] == b" ":
            start += 1
        if field == b"event":
            name = str(memoryview(line)[start:], "utf-8", "replace")
        elif field == b"data":
            data.append(str(memoryview(line)[start:], "utf-8", "replace"))
        del line
    # An event the stream ended before closing with a blank line is dropped, as the SSE rules (and the SDK)
    # say: it may be cut short.


def json_events(
    chunks: Iterable[bytes], *, gate: threading.BoundedSemaphore | None = None
) -> Iterator[Fields]:
    """Each event's JSON object. Its `type` field names it; where a service sends only the `event:` line,
    that name stands in. Raises json.JSONDecodeError for data that is not JSON.

    With a `gate`, an image event (a line past BIG_EVENT_BYTES) takes a place in it before the rest of it is
    read, and gives it back when the reader asks for the next event (it has dealt with this one): so only
    so many images are in memory at once, and those finish soon rather than all of them late. The others
    wait with their bytes in the socket's buffer."""
    held = False

    def hold() -> None:
        nonlocal held
        if gate is not None and not held:
            gate.acquire()
            held = True

    try:
        for name, data in events(chunks, on_big_line=hold):
            if data == "[DONE]":
                return
            payload = json.loads(data)
            if not isinstance(payload, dict):
                raise json.JSONDecodeError("an event that is not an object", data, 0)
            if name and "type" not in payload:
                payload["type"] = name
            del data
            yield Fields(payload)
            if held and gate is not None:
                gate.release()
                held = False
    finally:
        if held and gate is not None:
            gate.release()
