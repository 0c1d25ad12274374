"""OpenAIProvider against a real HTTP fake of the OpenAI Images API: the SDK, httpx and SSE run for real."""

import io
import time

import pytest
from PIL import Image

from studio.engine.providers.base import (
    CREDENTIALS_MESSAGE,
    DAMAGED_IMAGE_MESSAGE,
    MODERATION_MESSAGE,
    QUOTA_MESSAGE,
    AccountUnavailable,
    Completed,
    InputImage,
    PartialImage,
    ProviderError,
    Rejected,
    Transient,
)
from studio.engine.providers.openai import NOT_CONFIGURED_MESSAGE, OpenAIProvider
from studio.engine.spec import GenerationSpec
from tests.fake_upstream import FakeUpstream, make_image


def provider_for(upstream: FakeUpstream, **options: float) -> OpenAIProvider:
    return OpenAIProvider(api_key="test", base_url=upstream.base_url, **options)


def run(provider: OpenAIProvider, spec: GenerationSpec, **inputs) -> tuple[list[PartialImage], Completed]:
    events = list(provider.generate(spec, images=inputs.get("images", []), mask=inputs.get("mask")))
    assert events, "the provider yielded nothing"
    *partials, completed = events
    assert all(isinstance(event, PartialImage) for event in partials)
    assert isinstance(completed, Completed)
    return partials, completed


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def upload(size: tuple[int, int] = (64, 64), name: str = "image.png") -> InputImage:
    return InputImage(data=make_image(size, "png", (10, 20, 30)), filename=name)


def test_it_streams_partial_images_then_the_final_image(fake_upstream: FakeUpstream) -> None:
    spec = GenerationSpec.build(prompt="a lighthouse at dusk", aspect_ratio="16:9", partial_images=3)

    partials, completed = run(provider_for(fake_upstream), spec)

    assert [partial.index for partial in partials] == [0, 1, 2]
    assert all(opened(partial.data).size == (1536, 864) for partial in partials)
    [final] = completed.images
    assert opened(final.data).size == (1536, 864)
    assert opened(final.data).format == "PNG"
    assert completed.request_id == "req_fake_0001"
    assert completed.usage is not None
    assert completed.usage.output_tokens == 272
    assert completed.usage.total_tokens == completed.usage.input_tokens + 272
    assert completed.usage.details["input_tokens_details"]["text_tokens"] == 4
    assert (completed.size, completed.quality, completed.output_format, completed.background) == (
        "1536x864",
        "medium",
        "png",
        "opaque",
    )
    [request] = fake_upstream.requests
    assert request.path == "/v1/images/generations"
    assert request.json == {
        "model": "gpt-image-2",
        "prompt": "a lighthouse at dusk",
        "n": 1,
        "size": "1536x864",
        "quality": "medium",
        "output_format": "png",
        "background": "auto",
        "moderation": "auto",
        "stream": True,
        "partial_images": 3,
    }
    assert request.headers["authorization"] == "Bearer test"


def test_it_accepts_fewer_partial_images_than_asked(fake_upstream: FakeUpstream) -> None:
    fake_upstream.partial_images_sent = 1

    partials, completed = run(
        provider_for(fake_upstream), GenerationSpec.build(prompt="fog", partial_images=3)
    )

    assert [partial.index for partial in partials] == [0]
    assert len(completed.images) == 1


def test_it_reads_streams_that_carry_the_event_type_only_in_the_json(fake_upstream: FakeUpstream) -> None:
    fake_upstream.omit_event_lines = True

    partials, completed = run(
        provider_for(fake_upstream), GenerationSpec.build(prompt="fog", partial_images=2)
    )

    assert [partial.index for partial in partials] == [0, 1]
    assert opened(completed.images[0].data).size == (1024, 1024)


def test_it_collects_every_final_image_when_asked_for_two(fake_upstream: FakeUpstream) -> None:
    spec = GenerationSpec.build(prompt="twin moons", n=2, partial_images=1, output_format="webp")

    _, completed = run(provider_for(fake_upstream), spec)

    assert len(completed.images) == 2
    first, second = (opened(image.data) for image in completed.images)
    assert first.format == second.format == "WEBP"
    assert first.getpixel((0, 0)) != second.getpixel((0, 0))
    assert fake_upstream.requests[0].json["n"] == 2


def test_it_makes_a_plain_call_when_no_partial_images_are_asked(fake_upstream: FakeUpstream) -> None:
    spec = GenerationSpec.build(
        prompt="a red fox", partial_images=0, output_format="jpeg", output_compression=40, size="1024x1536"
    )

    partials, completed = run(provider_for(fake_upstream), spec)

    assert partials == []
    [final] = completed.images
    assert opened(final.data).size == (1024, 1536)
    assert opened(final.data).format == "JPEG"
    assert final.revised_prompt == "a red fox (revised)"
    assert completed.request_id == "req_fake_0001"
    assert completed.usage is not None and completed.usage.total_tokens > 0
    assert completed.output_format == "jpeg"
    [request] = fake_upstream.requests
    assert "stream" not in request.json
    assert "partial_images" not in request.json
    assert request.json["output_compression"] == 40


def test_it_leaves_compression_out_when_the_spec_has_none(fake_upstream: FakeUpstream) -> None:
    run(provider_for(fake_upstream), GenerationSpec.build(prompt="plain", partial_images=0))

    assert "output_compression" not in fake_upstream.requests[0].json


@pytest.mark.parametrize("partial_images", [2, 0], ids=["streamed", "plain"])
def test_it_sends_every_input_image_and_the_mask_to_the_edits_endpoint(
    fake_upstream: FakeUpstream, partial_images: int
) -> None:
    spec = GenerationSpec.build(
        prompt="put a hat on the cat", input_images=2, has_mask=True, partial_images=partial_images
    )
    images = [upload(name="cat.png"), upload(name="hat.png")]

    partials, completed = run(provider_for(fake_upstream), spec, images=images, mask=upload(name="mask.png"))

    assert len(partials) == partial_images
    assert opened(completed.images[0].data).size == (1024, 1024)
    assert completed.usage is not None
    assert completed.usage.details["input_tokens_details"]["image_tokens"] == 2 * 65
    [request] = fake_upstream.requests
    assert request.path == "/v1/images/edits"
    assert request.image_parts == 2
    assert request.has_mask
    assert [upload.filename for upload in request.files] == ["cat.png", "hat.png", "mask.png"]
    assert request.fields["model"] == "gpt-image-2"
    assert request.fields["prompt"] == "put a hat on the cat"
    # The edits endpoint takes no moderation parameter.
    assert "moderation" not in request.fields


def test_it_sends_a_single_input_image_as_an_image_array(fake_upstream: FakeUpstream) -> None:
    spec = GenerationSpec.build(prompt="sharper", input_images=1, partial_images=0)

    run(provider_for(fake_upstream), spec, images=[upload()])

    [request] = fake_upstream.requests
    assert [upload.name for upload in request.files] == ["image[]"]
    assert not request.has_mask


@pytest.mark.parametrize(
    ("mode", "error_type", "status", "code", "message"),
    [
        ("500", Transient, 500, "server_error", "The image service had an internal error. Try again."),
        (
            "429_rate_limit",
            AccountUnavailable,
            429,
            "rate_limit_exceeded",
            "The image service is rate limiting the studio. Try again in a moment.",
        ),
        ("429_insufficient_quota", AccountUnavailable, 429, "insufficient_quota", QUOTA_MESSAGE),
        ("400_moderation_blocked", Rejected, 400, "moderation_blocked", MODERATION_MESSAGE),
        (
            "400_invalid_request",
            Rejected,
            400,
            "invalid_value",
            "Invalid value for 'size': the longest edge must be at most 3840 pixels.",
        ),
        ("401_invalid_api_key", AccountUnavailable, 401, "invalid_api_key", CREDENTIALS_MESSAGE),
    ],
)
@pytest.mark.parametrize("partial_images", [2, 0], ids=["streamed", "plain"])
def test_each_upstream_error_becomes_a_typed_error_a_person_understands(
    fake_upstream: FakeUpstream,
    mode: str,
    error_type: type[ProviderError],
    status: int,
    code: str,
    message: str,
    partial_images: int,
) -> None:
    fake_upstream.fail_next(mode)

    with pytest.raises(error_type) as caught:
        list(
            provider_for(fake_upstream).generate(
                GenerationSpec.build(prompt="x", partial_images=partial_images), images=[], mask=None
            )
        )

    assert type(caught.value) is error_type
    assert caught.value.message == message
    assert caught.value.status == status
    assert caught.value.code == code
    assert caught.value.request_id == "req_fake_0001"
    # Rejected is final; a transient failure is retried, an account's (rate limit, key, quota) on another.
    assert caught.value.retryable is (error_type is not Rejected)
    assert len(fake_upstream.requests) == 1


@pytest.mark.parametrize("mode", ["cut_stream", "stream_without_completed"])
def test_a_stream_that_ends_before_the_final_image_is_transient(
    fake_upstream: FakeUpstream, mode: str
) -> None:
    fake_upstream.fail_next(mode)
    received: list[PartialImage] = []

    with pytest.raises(Transient) as caught:
        for event in provider_for(fake_upstream).generate(
            GenerationSpec.build(prompt="x", partial_images=3), images=[], mask=None
        ):
            assert isinstance(event, PartialImage)
            received.append(event)

    assert caught.value.code == "stream_cut"
    assert caught.value.request_id == "req_fake_0001"
    assert caught.value.status is None
    if mode == "cut_stream":
        assert [partial.index for partial in received] == [0]
    assert len(fake_upstream.requests) == 1


@pytest.mark.parametrize("mode", ["stream_error_event", "stream_error_event_flat"])
def test_an_error_event_inside_the_stream_becomes_a_typed_error(
    fake_upstream: FakeUpstream, mode: str
) -> None:
    fake_upstream.fail_next(mode)
    received: list[PartialImage] = []

    with pytest.raises(Rejected) as caught:
        for event in provider_for(fake_upstream).generate(
            GenerationSpec.build(prompt="x", partial_images=2), images=[], mask=None
        ):
            received.append(event)

    assert [partial.index for partial in received] == [0]
    assert caught.value.message == MODERATION_MESSAGE
    assert caught.value.code == "moderation_blocked"
    assert caught.value.request_id == "req_fake_0001"


@pytest.mark.parametrize("partial_images", [2, 0], ids=["streamed", "plain"])
def test_a_damaged_image_is_transient(fake_upstream: FakeUpstream, partial_images: int) -> None:
    fake_upstream.fail_next("invalid_base64")

    with pytest.raises(Transient) as caught:
        list(
            provider_for(fake_upstream).generate(
                GenerationSpec.build(prompt="x", partial_images=partial_images), images=[], mask=None
            )
        )

    assert caught.value.message == DAMAGED_IMAGE_MESSAGE
    assert caught.value.request_id == "req_fake_0001"


def test_a_silent_upstream_times_out_quickly_as_transient(fake_upstream: FakeUpstream) -> None:
    fake_upstream.fail_next("timeout")
    provider = provider_for(fake_upstream, timeout_seconds=1)
    started = time.monotonic()

    with pytest.raises(Transient) as caught:
        list(provider.generate(GenerationSpec.build(prompt="x"), images=[], mask=None))

    assert time.monotonic() - started < 5
    assert caught.value.code == "timeout"
    assert len(fake_upstream.requests) == 1


def test_an_upstream_slower_than_the_timeout_is_transient(fake_upstream: FakeUpstream) -> None:
    fake_upstream.latency = 2
    provider = provider_for(fake_upstream, timeout_seconds=0.5)

    with pytest.raises(Transient) as caught:
        list(provider.generate(GenerationSpec.build(prompt="x", partial_images=0), images=[], mask=None))

    assert caught.value.code == "timeout"


def test_a_slow_upstream_within_the_timeout_still_delivers(fake_upstream: FakeUpstream) -> None:
    fake_upstream.latency = 0.3
    fake_upstream.event_gap = 0.1

    partials, completed = run(provider_for(fake_upstream), GenerationSpec.build(prompt="x", partial_images=2))

    assert len(partials) == 2
    assert len(completed.images) == 1


def test_4k_requests_get_the_longer_timeout(fake_upstream: FakeUpstream) -> None:
    provider = provider_for(fake_upstream, timeout_seconds=7, timeout_4k_seconds=11)

    run(provider, GenerationSpec.build(prompt="x", aspect_ratio="16:9", resolution="4K", partial_images=0))
    run(provider, GenerationSpec.build(prompt="x", aspect_ratio="16:9", resolution="2K", partial_images=0))

    # The SDK announces the read timeout it uses in a header.
    assert [request.headers["x-stainless-read-timeout"] for request in fake_upstream.requests] == ["11", "7"]


@pytest.mark.parametrize("mode", ["500", "429_rate_limit", "timeout"])
def test_the_sdk_makes_exactly_one_request_per_call(fake_upstream: FakeUpstream, mode: str) -> None:
    fake_upstream.fail_next(mode)
    provider = provider_for(fake_upstream, timeout_seconds=1)
    spec = GenerationSpec.build(prompt="x", partial_images=1)

    with pytest.raises(ProviderError) as caught:
        list(provider.generate(spec, images=[], mask=None))
    assert caught.value.retryable  # retried by the runner (on another account for a 429), not by the SDK
    assert len(fake_upstream.requests) == 1

    # The failure queue is spent: the next call goes through, again as a single request.
    run(provider, spec)
    assert len(fake_upstream.requests) == 2
    assert fake_upstream.requests[1].headers["x-stainless-retry-count"] == "0"


def test_it_reads_its_configuration_from_django_settings(settings) -> None:
    settings.OPENAI_API_KEY = "sk-from-settings"
    settings.OPENAI_BASE_URL = "http://gateway.invalid/v1"
    settings.OPENAI_IMAGE_MODEL = "gpt-image-2-preview"
    settings.OPENAI_TIMEOUT_SECONDS = 42
    settings.OPENAI_TIMEOUT_4K_SECONDS = 99

    provider = OpenAIProvider.from_settings()

    assert provider.model == "gpt-image-2-preview"
    assert (provider.timeout_seconds, provider.timeout_4k_seconds) == (42, 99)
    assert provider.client is not None
    assert provider.client.api_key == "sk-from-settings"
    assert str(provider.client.base_url).startswith("http://gateway.invalid/v1")
    assert provider.client.max_retries == 0


def test_it_uses_the_default_endpoint_when_no_base_url_is_set(settings, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = None

    provider = OpenAIProvider.from_settings()

    assert provider.client is not None
    assert str(provider.client.base_url).startswith("https://api.openai.com/v1")


def test_a_missing_api_key_fails_each_generation_with_a_clear_rejection(fake_upstream: FakeUpstream) -> None:
    provider = OpenAIProvider(api_key="", base_url=fake_upstream.base_url)

    with pytest.raises(Rejected) as caught:
        list(provider.generate(GenerationSpec.build(prompt="x"), images=[], mask=None))

    assert caught.value.message == NOT_CONFIGURED_MESSAGE
    assert caught.value.code == "not_configured"
    assert fake_upstream.requests == []


def test_a_rate_limit_says_when_to_come_back(fake_upstream: FakeUpstream) -> None:
    fake_upstream.fail_next("429_rate_limit")  # the fake sends Retry-After: 1
    with pytest.raises(AccountUnavailable) as caught:
        list(provider_for(fake_upstream).generate(GenerationSpec.build(prompt="x"), images=[], mask=None))
    assert caught.value.reason == "rate_limited"
    assert caught.value.retry_after == 1.0


def test_threads_share_the_clients_in_turn_each_keeping_to_its_own(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from studio.engine.providers import openai as openai_provider

    monkeypatch.setattr(openai_provider, "_clients", {})  # not the clients other tests' threads made

    def clients_of_one_thread(_: int) -> tuple[int, int]:
        first = openai_provider._shared_client("k", "http://127.0.0.1:9/v1", 30)
        again = openai_provider._shared_client("k", "http://127.0.0.1:9/v1", 30)
        return id(first), id(again)

    with ThreadPoolExecutor(max_workers=openai_provider.CLIENT_SHARDS * 2) as threads:
        pairs = list(threads.map(clients_of_one_thread, range(openai_provider.CLIENT_SHARDS * 2)))
    assert all(first == again for first, again in pairs)  # a thread keeps to its client
    # No more clients than shards, and the threads spread over them (not one pool for all).
    distinct = {first for first, _ in pairs}
    assert 2 <= len(distinct) <= openai_provider.CLIENT_SHARDS
