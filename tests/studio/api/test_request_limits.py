"""A body over REQUEST_MAX_BYTES is refused by the server (413, in the API's error shape) before it is
queued for the application: a 200 MB upload leaves the web process's memory where it was."""

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
