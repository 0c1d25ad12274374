"""The task APIs, through a running studio: each dialect's documented example replayed, polling to the end,
chaining one task's result into the next, webhooks, refused URLs, and workspace isolation."""

import http.server
import io
import json
import threading
import time

import httpx
import pytest
from PIL import Image as PillowImage

from accounts.models import ApiKey
from studio.engine.webhooks import verify
from studio.models import Generation, Source, Status, WebhookDelivery
from tests.conftest import png_bytes
from tests.helpers import finished_generation, personal_membership

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def key(alice):
    return ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="tasks")


@pytest.fixture
def api(studio_url, key):
    with httpx.Client(
        base_url=studio_url, headers={"Authorization": f"Bearer {key[1]}"}, timeout=30
    ) as client:
        yield client


def poll(api, path: str, done, *, method: str = "GET", body=None, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.post(path, json=body) if method == "POST" else api.get(path)
        answer = response.json()
        if done(answer):
            return answer
        time.sleep(0.2)
    raise AssertionError(f"still not done: {answer}")


def fetch_png(url: str) -> PillowImage.Image:
    response = httpx.get(url)  # a signed link: no key needed
    assert response.status_code == 200
    return PillowImage.open(io.BytesIO(response.content))


# --- sjinn ---


def test_sjinn_text_to_image_as_documented(api, worker, alice):
    response = api.post(
        "/api/un-api/create_tool_task",
        json={
            "tool_type": "gpt-image-2-api",
            "input": {
                "prompt": "A futuristic city skyline at dusk with glowing neon lights",
                "aspect_ratio": "16:9",
            },
        },
    )
    body = response.json()
    assert body["success"] is True and body["errorMsg"] == "" and body["error_code"] == 0
    task_id = body["data"]["task_id"]

    status = poll(
        api,
        "/api/un-api/query_tool_task_status",
        lambda answer: answer["data"]["status"] in ("completed", "failed"),
        method="POST",
        body={"task_id": task_id},
    )
    assert status["data"]["status"] == "completed"
    assert fetch_png(status["data"]["output_urls"][0]).size == (1536, 864)
    generation = Generation.objects.get(pk=task_id)
    assert generation.source == Source.SJINN and generation.cost == 100
    alice.refresh_from_db()
    assert alice.credits == 900


def test_sjinn_bad_input_answers_in_its_error_shape(api, worker):
    response = api.post("/api/un-api/create_tool_task", json={"tool_type": "gpt-image-2-api", "input": {}})
    assert response.json() == {"success": False, "errorMsg": "prompt is required", "error_code": 400}
    assert not Generation.objects.exists()


def test_sjinn_unsupported_ratio_falls_back_to_auto(api, worker):
    response = api.post(
        "/api/un-api/create_tool_task",
        json={"tool_type": "gpt-image-2-api", "input": {"prompt": "a kite", "aspect_ratio": "7:5"}},
    )
    generation = Generation.objects.get(pk=response.json()["data"]["task_id"])
    assert generation.spec["aspect_ratio"] == "auto"


# --- sinancode, and chaining ---


def test_sinancode_documented_example_refuses_an_unreachable_url_without_charging(api, alice):
    response = api.post(
        "/v1/generate/k/gpt-image-2-image-to-image",
        json={
            "input_urls": ["https://media.sinancode.com/examples/gpt-image-2/input.png"],
            "prompt": "take a photo with Sam Altman in the conference room",
            "aspect_ratio": "auto",
            "nsfw_checker": True,
            "resolution": "1K",
        },
    )
    # No network here: the host does not resolve, which is refused before anything is charged.
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "images"
    alice.refresh_from_db()
    assert alice.credits == 1000 and not Generation.objects.exists()


def test_a_result_url_feeds_the_next_task(api, worker, alice):
    first = api.post("/api/v1/tasks", json={"prompt": "a blue teapot", "aspect_ratio": "1:1"}).json()
    done = poll(
        api, f"/api/v1/tasks/{first['id']}", lambda answer: answer["status"] not in ("queued", "running")
    )
    timing = api.get(f"/api/v1/tasks/{first['id']}").headers["Server-Timing"]
    assert timing.startswith("queue;dur=") and ", upstream;dur=" in timing and ", storage;dur=" in timing
    result_url = done["result"]["urls"][0]

    second = api.post(
        "/v1/generate/k/gpt-image-2-image-to-image",
        json={
            "input_urls": [result_url],
            "prompt": "the same teapot, in gold",
            "aspect_ratio": "1:1",
            "resolution": "1K",
        },
    ).json()
    status = poll(
        api, f"/v1/tasks/{second['task_id']}", lambda answer: answer["status"] in ("succeeded", "failed")
    )
    assert status["status"] == "succeeded", status
    assert status["error_code"] == "" and len(status["result"]) == 1
    chained = Generation.objects.get(pk=second["task_id"])
    # Read from storage, with lineage to the first image, not fetched over the network.
    source_input = chained.inputs.get()
    assert source_input.source_image.generation_id == Generation.objects.get(pk=first["id"]).pk
    assert source_input.url == ""
    assert chained.source == Source.SINANCODE


def test_sinancode_validates_as_documented(api):
    cases = [
        ({"prompt": "x"}, "input_urls"),
        ({"input_urls": [], "prompt": "x"}, "input_urls"),
        ({"input_urls": ["asset://x"], "prompt": ""}, "prompt"),
        ({"input_urls": ["asset://x"], "prompt": "x" * 20_001}, "prompt"),
        ({"input_urls": ["asset://x"], "prompt": "x", "aspect_ratio": "7:5"}, "aspect_ratio"),
        ({"input_urls": ["asset://x"], "prompt": "x", "resolution": "8K"}, "resolution"),
    ]
    for body, param in cases:
        response = api.post("/v1/generate/k/gpt-image-2-image-to-image", json=body)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, body


# --- givon ---


def test_givon_documented_example_with_assets_of_the_workspace(api, worker, alice):
    _, source = finished_generation(personal_membership(alice), prompt="a corgi")
    _, reference = finished_generation(personal_membership(alice), prompt="soft light")
    response = api.post(
        "/api/v1/generations",
        json={
            "type": "image",
            "model": "gpt-image-2",
            "input": {
                "prompt": "studio portrait of a red corgi, soft light",
                "aspectRatio": "9:16",
                "quality": "medium",
                "imageSize": "1K",
                "sourceImage": f"asset://{source.pk}",
                "referenceAssetUris": [f"asset://{reference.pk}"],
            },
        },
    )
    assert response.status_code == 201, response.text
    generation_id = response.json()["id"]
    status = poll(
        api,
        f"/api/v1/generations/{generation_id}",
        lambda answer: answer["status"] in ("completed", "failed"),
    )
    assert status["status"] == "completed", status
    assert fetch_png(status["output"]["images"][0]["url"]).format == "PNG"
    generation = Generation.objects.get(pk=generation_id)
    assert generation.source == Source.GIVON and generation.inputs.count() == 2


def test_givon_mask_requires_a_source_image(api):
    response = api.post(
        "/api/v1/generations",
        json={
            "type": "image",
            "model": "gpt-image-2",
            "input": {"prompt": "x", "maskImage": "data:image/png;base64,AA=="},
        },
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "maskImage"


def test_another_workspaces_asset_is_not_found(api, bob, alice):
    _, foreign = finished_generation(personal_membership(bob), prompt="bob's")
    response = api.post(
        "/api/v1/generations",
        json={"type": "image", "input": {"prompt": "steal it", "sourceImage": f"asset://{foreign.pk}"}},
    )
    assert response.status_code == 404
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_another_workspaces_task_is_not_found(api, bob, studio_url):
    _, bob_secret = ApiKey.issue(user=bob, workspace=personal_membership(bob).workspace, name="bob")
    task = api.post("/api/v1/tasks", json={"prompt": "mine"}).json()
    other = httpx.get(
        f"{studio_url}/api/v1/tasks/{task['id']}", headers={"Authorization": f"Bearer {bob_secret}"}
    )
    assert other.status_code == 404


# --- URLs refused ---


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/image.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/image.png",
        "http://localhost/image.png",
        "file:///etc/passwd",
    ],
)
def test_private_urls_are_refused_and_nothing_is_charged(api, alice, url):
    response = api.post("/api/v1/tasks", json={"prompt": "x", "images": [url]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "url_refused"
    alice.refresh_from_db()
    assert alice.credits == 1000 and not Generation.objects.exists()


# --- webhooks ---


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that fails the first `failures` deliveries."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.deliveries: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append((dict(self.headers), body))
                failing = len(receiver.deliveries) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/studio"


def test_a_finished_task_posts_a_signed_webhook_retried_until_delivered(api, worker, key):
    receiver = Receiver(failures=1)
    try:
        task = api.post(
            "/api/v1/tasks", json={"prompt": "a signal fire", "callback_url": receiver.url}
        ).json()
        deadline = time.monotonic() + 30
        while len(receiver.deliveries) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        receiver.shutdown()

    assert len(receiver.deliveries) == 2
    secret = key[0].webhook_secret
    for headers, body in receiver.deliveries:
        assert verify(secret, headers["X-Studio-Timestamp"], body, headers["X-Studio-Signature"])
        assert not verify("wrong secret", headers["X-Studio-Timestamp"], body, headers["X-Studio-Signature"])
        payload = json.loads(body)
        assert payload["task_id"] == task["id"] and payload["task"]["status"] == "succeeded"
    # Same task id in both: a receiver deduplicates by it; each delivery has its own id.
    assert receiver.deliveries[0][0]["X-Studio-Delivery"] != receiver.deliveries[1][0]["X-Studio-Delivery"]
    deliveries = list(WebhookDelivery.objects.filter(generation_id=task["id"]).order_by("attempt"))
    assert [(d.attempt, d.status_code, d.succeeded) for d in deliveries] == [(1, 500, False), (2, 204, True)]


def test_a_failed_task_refunds_and_reports_in_the_dialect(api, worker, alice, monkeypatch):
    from studio.engine.providers import Rejected

    class Refusing:
        name = "refusing"

        def generate(self, spec, *, images, mask):
            raise Rejected("The request was blocked by the safety system.", code="moderation_blocked")

    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: Refusing())
    task = api.post("/api/v1/tasks", json={"prompt": "forbidden"}).json()
    status = poll(
        api, f"/api/v1/tasks/{task['id']}", lambda answer: answer["status"] not in ("queued", "running")
    )
    assert status["status"] == Status.FAILED
    assert status["error"] == {
        "code": "moderation_blocked",
        "message": "The request was blocked by the safety system.",
    }
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_data_uris_are_accepted(api, worker):
    import base64

    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes((256, 256))).decode()
    task = api.post("/api/v1/tasks", json={"prompt": "from a data uri", "images": [data_uri]}).json()
    status = poll(
        api, f"/api/v1/tasks/{task['id']}", lambda answer: answer["status"] not in ("queued", "running")
    )
    assert status["status"] == "succeeded", status
