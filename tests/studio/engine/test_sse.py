"""The studio's SSE reader gives the events the SDK's decoder gives, wherever the chunks cut the stream."""

import json
import sys
import threading

import pytest
from openai._streaming import SSEDecoder

from studio.engine.providers import sse

STREAM = (
    b": a comment\n"
    b"event: image_generation.partial_image\n"
    b'data: {"type": "image_generation.partial_image", "b64_json": "' + b"QUJD" * 5000 + b'"}\n'
    b"\n"
    b"id: 7\r\n"
    b"event: keepalive\r\n"
    b'data: {"n": 1}\r\n'
    b"\r\n"
    b'data: {"type": "split",\r'
    b'data:  "lines": 2}\r'
    b"\r"
    b'event: named\ndata: {"nameless": true}\n\n'
    b'data: {"type": "last", "unterminated": true}'
)


def sdk_events(chunks):
    return [(event.event or "", event.data) for event in SSEDecoder().iter_bytes(iter(chunks))]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096, len(STREAM)])
def test_every_cut_of_the_stream_gives_the_sdks_events(size):
    chunks = [STREAM[index : index + size] for index in range(0, len(STREAM), size)]
    assert list(sse.events(chunks)) == sdk_events(chunks)


def test_a_cut_between_cr_and_lf_is_one_line_end():
    stream = b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n'
    cut = stream.index(b"\n")
    assert list(sse.events([stream[:cut], stream[cut:]])) == [("", '{"a": 1}'), ("", '{"b": 2}')]


def test_json_events_read_by_attribute_with_the_event_name_as_a_fallback_type():
    stream = b'event: named\ndata: {"usage": {"input_tokens": 3}, "items": [{"x": 1}]}\n\ndata: [DONE]\n\n'
    (event,) = sse.json_events([stream])
    assert (event.type, event.usage.input_tokens, event.items[0].x, event.missing) == ("named", 3, 1, None)
    assert event.usage.model_dump() == {"input_tokens": 3}


def test_data_that_is_not_json_is_an_error():
    with pytest.raises(json.JSONDecodeError):
        list(sse.json_events([b"data: not json\n\n"]))


def big_event(kind: str) -> bytes:
    return (
        b'data: {"type": "'
        + kind.encode()
        + b'", "b64_json": "'
        + b"A" * (sse.BIG_EVENT_BYTES + 10)
        + b'"}\n\n'
    )


def test_an_image_event_takes_a_place_in_the_gate_until_the_reader_asks_for_more():
    gate = threading.BoundedSemaphore(1)
    first = sse.json_events(
        [big_event("one")[:1000], big_event("one")[1000:], b'data: {"type": "end"}\n\n'], gate=gate
    )
    assert next(first).type == "one"
    assert not gate.acquire(blocking=False)  # held while the reader deals with the image
    # Another stream's image waits for the place...
    second = sse.json_events(iter([big_event("two")[:1000], big_event("two")[1000:]]), gate=gate)
    waiting = threading.Thread(target=lambda: results.append(next(second).type))
    results: list[str] = []
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and not results
    # ...until the first reader asks for its next event, which is small: it goes through ungated.
    assert next(first).type == "end"
    waiting.join(5)
    assert results == ["two"]
    second.close()  # a reader that stops early gives its place back
    assert gate.acquire(blocking=False)


def test_small_events_never_wait_for_the_gate():
    gate = threading.BoundedSemaphore(1)
    gate.acquire()
    assert [
        event.type
        for event in sse.json_events([b'data: {"type": "a"}\n\ndata: {"type": "b"}\n\n'], gate=gate)
    ] == ["a", "b"]


def test_an_event_handed_out_is_held_by_the_reader_alone():
    # A 4K image is ~18 MB of base64: the stream must not keep a copy of it (or of its pieces) once handed
    # out, or a worker holds every image twice or three times while it decodes it.
    image = "A" * (3 * 1024 * 1024)
    body = f"event: image_generation.completed\ndata: {image}\n\ndata: [DONE]\n\n".encode()
    chunks = [body[start : start + 65536] for start in range(0, len(body), 65536)]
    for name, data in sse.events(iter(chunks)):
        if name == "image_generation.completed":
            assert data == image
            assert sys.getrefcount(data) == 2  # `data` here, and getrefcount's own argument


def test_taking_a_field_removes_it_from_the_event():
    (event,) = sse.json_events(iter([b'data: {"type": "x", "b64_json": "QUJD", "n": 1}\n\n']))
    assert event.take("b64_json") == "QUJD"
    assert event.b64_json is None and event.n == 1
    assert event.take("missing") is None
