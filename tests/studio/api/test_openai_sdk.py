"""The official `openai` SDK, unchanged but for its base URL and key, against a running studio."""

import base64
import io
import urllib.request

import httpx
import openai
import pytest
from PIL import Image as PillowImage

from accounts import ledger
from accounts.models import ApiKey, EntryKind
from studio.models import Generation, InputRole, Source, Status
from tests.conftest import png_bytes
from tests.helpers import personal_membership

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api_key(alice):
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="tests")
    return secret


@pytest.fixture
def client(studio_url, api_key):
    return openai.OpenAI(base_url=f"{studio_url}/v1", api_key=api_key, max_retries=0, timeout=60)


def decode(b64: str) -> PillowImage.Image:
    return PillowImage.open(io.BytesIO(base64.b64decode(b64)))


def test_generate_answers_in_openais_shape_and_charges_credits(client, worker, alice):
    result = client.images.generate(model="gpt-image-2", prompt="a red fox in snow", size="1536x1024", n=2)

    assert len(result.data) == 2
    image = decode(result.data[0].b64_json)
    assert (image.format, image.size) == ("PNG", (1536, 1024))
    assert result.data[0].revised_prompt
    assert result.size == "1536x1024" and result.quality == "medium" and result.output_format == "png"
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens > 0
    alice.refresh_from_db()
    assert alice.credits == 800
    generation = Generation.objects.get()
    assert generation.source == Source.API and generation.status == Status.SUCCEEDED
    assert generation.workspace == personal_membership(alice).workspace


def test_an_answer_says_where_its_time_went_in_server_timing(client, worker):
    raw = client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a tin robot", size="1024x1024"
    )
    timing = dict(
        (part.split(";dur=")[0].strip(), int(part.split(";dur=")[1]))
        for part in raw.headers["server-timing"].split(",")
    )
    generation = Generation.objects.get()
    assert timing == {
        "queue": generation.queue_ms,
        "upstream": generation.upstream_latency_ms,
        "storage": generation.storage_ms,
    }
    # The offline engine draws in a few steps; the worker took it at once and stored it in a moment.
    assert timing["upstream"] > 0 and timing["queue"] >= 0 and timing["storage"] >= 0
    assert raw.parse().data[0].b64_json


def test_edit_with_two_images_and_a_mask(client, worker):
    first, second = png_bytes((1024, 1024), (10, 120, 200, 255)), png_bytes((1024, 1024), (240, 200, 10, 255))
    mask = png_bytes((1024, 1024), (0, 0, 0, 0))
    result = client.images.edit(
        model="gpt-image-2",
        image=[("first.png", first, "image/png"), ("second.png", second, "image/png")],
        mask=("mask.png", mask, "image/png"),
        prompt="blend them into a sunset",
    )
    assert decode(result.data[0].b64_json).size == (1024, 1024)
    generation = Generation.objects.get()
    roles = sorted(generation.inputs.values_list("role", flat=True))
    assert roles == [InputRole.MASK, InputRole.REFERENCE, InputRole.REFERENCE]


def test_stream_with_partial_images(client, worker):
    events = list(
        client.images.generate(model="gpt-image-2", prompt="a koi pond", stream=True, partial_images=2)
    )
    types = [event.type for event in events]
    assert types[-1] == "image_generation.completed"
    partials = [event for event in events if event.type == "image_generation.partial_image"]
    assert 1 <= len(partials) <= 2
    assert [event.partial_image_index for event in partials] == sorted(
        {e.partial_image_index for e in partials}
    )
    assert decode(events[-1].b64_json).size == (1024, 1024)
    assert events[-1].usage.total_tokens > 0


def test_response_format_url_is_a_signed_link_that_works_without_a_key(client, worker):
    result = client.images.generate(model="gpt-image-2", prompt="a paper crane", response_format="url")
    url = result.data[0].url
    assert result.data[0].b64_json is None
    with urllib.request.urlopen(url) as response:
        assert PillowImage.open(io.BytesIO(response.read())).format == "PNG"
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(forged)
    assert raised.value.code == 404


def test_the_gateway_model_names_pick_their_default_sizes(client, worker):
    result = client.images.generate(model="gpt-image-2-2k", prompt="a tall ship")
    assert decode(result.data[0].b64_json).size == (2048, 2048)
    models = {model.id for model in client.models.list()}
    assert {
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "gpt-image-2-1k",
        "gpt-image-2-4k",
        "gpt-image-2-vip",
    } <= models


def test_a_raw_sse_transcript_line_by_line(studio_url, api_key, worker):
    import json

    with httpx.stream(
        "POST",
        f"{studio_url}/v1/images/generations",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "gpt-image-2", "prompt": "a lantern", "stream": True, "partial_images": 1},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())

    # Events are "event: TYPE", "data: JSON", then a blank line.
    assert len(lines) % 3 == 0, lines
    fields = {"type", "b64_json", "created_at", "size", "quality", "background", "output_format"}
    for event_line, data_line, blank in zip(lines[0::3], lines[1::3], lines[2::3], strict=True):
        assert event_line.startswith("event: ") and data_line.startswith("data: ") and blank == ""
        payload = json.loads(data_line.removeprefix("data: "))
        assert payload["type"] == event_line.removeprefix("event: ")
        assert fields <= set(payload)
        if payload["type"] == "image_generation.partial_image":
            assert payload["partial_image_index"] == 0
    assert json.loads(lines[-2].removeprefix("data: "))["type"] == "image_generation.completed"
    assert set(json.loads(lines[-2].removeprefix("data: "))["usage"]) >= {
        "input_tokens",
        "output_tokens",
        "total_tokens",
    }


def test_errors_in_openais_shape(studio_url, client, alice, api_key):
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="gpt-image-2", prompt="x", size="1000x1000")
    assert raised.value.status_code == 400 and raised.value.body["param"] == "size"

    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="gpt-image-2-1k", prompt="x", size="3840x2160")
    assert raised.value.body["param"] == "size"

    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="dall-e-9", prompt="x")
    assert raised.value.body["param"] == "model" and raised.value.body["code"] == "model_not_found"

    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="gpt-image-2", prompt="x", n=11)
    assert raised.value.body["param"] == "n"

    anonymous = openai.OpenAI(base_url=f"{studio_url}/v1", api_key="sk-studio-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        anonymous.images.generate(model="gpt-image-2", prompt="x")
    assert raised.value.status_code == 401

    ledger.adjust(user=alice, amount=-alice.credits, kind=EntryKind.ADJUSTMENT, reason="test")
    with pytest.raises(openai.APIStatusError) as raised:
        client.images.generate(model="gpt-image-2", prompt="x")
    assert raised.value.status_code == 402 and raised.value.body["code"] == "insufficient_credits"
    assert not Generation.objects.exists()


def test_a_revoked_key_is_refused(studio_url, alice):
    key, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="old")
    key.revoke()
    client = openai.OpenAI(base_url=f"{studio_url}/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_the_per_key_rate_limit_answers_429(studio_url, alice):
    key, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="slow")
    ApiKey.objects.filter(pk=key.pk).update(rate_limit_per_minute=2)
    client = openai.OpenAI(base_url=f"{studio_url}/v1", api_key=secret, max_retries=0)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as raised:
        client.models.list()
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_a_failed_generation_is_refunded_and_answered_with_an_error(client, worker, alice, monkeypatch):
    from studio.engine.providers import Rejected

    class Refusing:
        name = "refusing"

        def generate(self, spec, *, images, mask):
            raise Rejected("The request was blocked by the safety system.", code="moderation_blocked")

    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: Refusing())
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="gpt-image-2", prompt="something forbidden")
    assert raised.value.body["code"] == "moderation_blocked"
    alice.refresh_from_db()
    assert alice.credits == 1000
