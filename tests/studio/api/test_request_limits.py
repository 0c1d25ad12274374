"""The server's own limits. A body over REQUEST_MAX_BYTES is refused (413, in the API's error shape) before
it is queued for the application: a 200 MB upload leaves the web process's memory where it was. Over-long
request lines and headers are answered 414 and 431, never a dropped connection."""

import contextlib
import json
import socket
from pathlib import Path

import httpx
import pytest

from accounts.models import ApiKey
from tests.helpers import personal_membership
from tests.studio.api.conftest import SERVER_PIDS

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

MEBIBYTE = 1024 * 1024


def resident_mebibytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def chunks(total: int, size: int = MEBIBYTE):
    sent = 0
    while sent < total:
        yield b"\x00" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize(
    ("path", "content_type", "shape"),
    [
        ("/v1/images/edits", "multipart/form-data; boundary=studio", "openai"),
        ("/api/un-api/create_tool_task", "application/json", "sjinn"),
    ],
)
def test_a_200_mb_body_is_refused_without_the_web_process_growing(
    studio_url, alice, path, content_type, shape
):
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="big")
    pid = SERVER_PIDS[studio_url]
    httpx.get(f"{studio_url}/healthz")
    before = resident_mebibytes(pid)
    total = 200 * MEBIBYTE
    response = httpx.post(
        f"{studio_url}{path}",
        content=chunks(total),
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": content_type,
            "Content-Length": str(total),
        },
        timeout=120,
    )
    grown = resident_mebibytes(pid) - before
    assert response.status_code == 413
    body = response.json()
    if shape == "sjinn":
        assert body["success"] is False and body["error_code"] == 413
    else:
        assert body["error"]["code"] == "request_too_large"
    assert grown < 16, f"the web process grew by {grown:.1f} MiB for a refused 200 MiB body"
    print(f"\n200 MiB body refused with 413; web process RSS {before:.0f} MiB -> grew {grown:.1f} MiB")
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_a_json_route_takes_no_more_than_django_reads_of_a_json_body(studio_url, alice, settings):
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="json")
    pid = SERVER_PIDS[studio_url]
    before = resident_mebibytes(pid)
    total = settings.DATA_UPLOAD_MAX_MEMORY_SIZE * 3
    response = httpx.post(
        f"{studio_url}/api/v1/tasks",
        content=chunks(total),
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "Content-Length": str(total),
        },
        timeout=60,
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert resident_mebibytes(pid) - before < 8


def test_a_body_within_the_limit_is_served(studio_url, alice):
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="small")
    response = httpx.post(
        f"{studio_url}/api/v1/tasks",
        json={"prompt": "x", "size": "bad"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "size"


def raw_exchange(studio_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are and read the whole answer until the server closes the connection."""
    host, port = studio_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert received, "the connection was closed without an answer"
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_an_over_long_path_is_answered_414(studio_url):
    status, headers, body = raw_exchange(
        studio_url, b"GET /gallery/" + b"a" * 65536 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    assert status == 414
    assert headers["connection"] == "close" and int(headers["content-length"]) == len(body)
    assert b"request line is too long" in body


def test_an_over_long_api_path_is_answered_414_in_the_api_shape(studio_url):
    status, _, body = raw_exchange(
        studio_url, b"GET /v1/images/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    assert status == 414 and json.loads(body)["error"]["code"] == "uri_too_long"


def test_an_over_long_cookie_is_answered_431(studio_url):
    status, _, body = raw_exchange(
        studio_url, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: a=" + b"b" * 65536 + b"\r\n\r\n"
    )
    assert status == 431 and b"headers are too large" in body


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("many small headers adding up", b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 200) for i in range(100))),
        ("too many headers", b"".join(b"X-N-%d: 1\r\n" % i for i in range(600))),
    ],
)
def test_oversized_headers_on_an_api_route_are_answered_431_in_its_shape(studio_url, name, headers):
    status, _, body = raw_exchange(
        studio_url, b"GET /api/v1/tasks/x HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
    )
    assert status == 431, name
    assert json.loads(body)["error"]["code"] == "headers_too_large"


def test_a_malformed_request_line_is_still_a_400(studio_url):
    status, _, _ = raw_exchange(studio_url, b"NONSENSE\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 400


def test_requests_within_the_header_limits_are_served_on_a_kept_alive_connection(studio_url):
    # An 8 KB cookie (what common proxies pass) on three requests over one connection.
    with httpx.Client(base_url=studio_url) as client:
        for _ in range(3):
            response = client.get("/healthz", headers={"Cookie": "a=" + "b" * 8000})
            assert response.status_code == 200
