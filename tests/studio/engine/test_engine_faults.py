"""Every way the upstream fails, end to end: a real Celery worker (threads, real Redis) runs the `openai`
provider, through the official SDK, against the fake Images API on 127.0.0.1. For each failure: the final
status, the money (one spend, at most one refund), the number of upstream attempts and the message shown."""

import io
import logging

import pytest
from PIL import Image as PillowImage

from accounts.models import EntryKind, LedgerEntry
from studio.engine.images import check_image
from studio.engine.providers import Completed, FinalImage
from studio.engine.providers.base import (
    CREDENTIALS_MESSAGE,
    DAMAGED_IMAGE_MESSAGE,
    MODERATION_MESSAGE,
    QUOTA_MESSAGE,
)
from studio.engine.providers.local import LocalProvider
from studio.engine.services import SubmittedImage, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status
from tests.conftest import png_bytes
from tests.fake_upstream import FAILURE_MODES, FakeUpstream
from tests.helpers import attempt_lines, personal_membership
from tests.workers import FinishedTasks, new_queue, worker_in_process

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

# Failures that may pass: retried with backoff, at most twice. (message shown, error code)
TRANSIENT = {
    "500": ("The image service had an internal error. Try again.", "server_error"),
    "429_rate_limit": (
        "The image service is rate limiting the studio. Try again in a moment.",
        "rate_limit_exceeded",
    ),
    "timeout": ("The image service took too long to answer. Try again.", "timeout"),
    "cut_stream": (
        "The connection to the image service broke off before the image arrived. Try again.",
        "stream_cut",
    ),
    "stream_without_completed": (
        "The connection to the image service broke off before the image arrived. Try again.",
        "stream_cut",
    ),
    "invalid_base64": (DAMAGED_IMAGE_MESSAGE, "invalid_image"),
}
# Refusals: retrying will not help, so they fail at once.
REJECTED = {
    "429_insufficient_quota": (QUOTA_MESSAGE, "insufficient_quota"),
    "400_moderation_blocked": (MODERATION_MESSAGE, "moderation_blocked"),
    "400_invalid_request": (
        "Invalid value for 'size': the longest edge must be at most 3840 pixels.",
        "invalid_value",
    ),
    "401_invalid_api_key": (CREDENTIALS_MESSAGE, "invalid_api_key"),
    "stream_error_event": (MODERATION_MESSAGE, "moderation_blocked"),
    "stream_error_event_flat": (MODERATION_MESSAGE, "moderation_blocked"),
}
TIMEOUT_SECONDS = 1.5


def test_every_failure_mode_of_the_fake_upstream_is_covered_here():
    assert set(TRANSIENT) | set(REJECTED) == set(FAILURE_MODES)


@pytest.fixture(scope="module")
def engine_queue():
    """One worker for the module (starting one per test costs seconds); each test waits for its tasks."""
    queue = new_queue()
    with worker_in_process(queue, concurrency=2):
        yield queue


@pytest.fixture
def finished(engine_queue):
    with FinishedTasks().listening() as tasks:
        yield tasks


@pytest.fixture
def upstream(settings, fake_upstream: FakeUpstream) -> FakeUpstream:
    """The `openai` provider pointed at the fake, with a short timeout and tiny backoffs."""
    settings.OPENAI_API_KEY = "test"
    settings.OPENAI_BASE_URL = fake_upstream.base_url
    settings.OPENAI_TIMEOUT_SECONDS = 5
    settings.GENERATION_MAX_RETRIES = 2
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 0.01
    return fake_upstream


def generate(user, finished: FinishedTasks, spec: GenerationSpec, **inputs) -> Generation:
    generation = generation_submit(
        membership=personal_membership(user), spec=spec, provider="openai", **inputs
    )
    return finished.wait(generation)


def money_of(user, generation: Generation) -> dict:
    """What the generation cost the user; `balance` is the change since signup."""
    signup_balance = LedgerEntry.objects.filter(user=user).exclude(reference=generation.ledger_reference)
    user.refresh_from_db()
    entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
    return {
        "spent": [-entry.amount for entry in entries.filter(kind=EntryKind.SPEND)],
        "refunded": [entry.amount for entry in entries.filter(kind=EntryKind.REFUND)],
        "balance": user.credits - sum(entry.amount for entry in signup_balance),
    }


attempt_logs = attempt_lines


def spec(**options) -> GenerationSpec:
    # One partial image: the stream modes (cut, error event) need a stream to break.
    return GenerationSpec.build(**{"prompt": "a lighthouse at dusk", "partial_images": 1, **options})


@pytest.mark.parametrize("mode", TRANSIENT)
def test_a_transient_failure_once_is_retried_and_succeeds_charging_once(
    upstream, finished, alice, settings, mode
):
    if mode == "timeout":
        settings.OPENAI_TIMEOUT_SECONDS = TIMEOUT_SECONDS
    upstream.fail_next(mode)

    generation = generate(alice, finished, spec())

    assert generation.status == Status.SUCCEEDED, generation.error
    assert generation.attempts == 2 and len(upstream.requests) == 2
    assert generation.error == "" and generation.images.count() == 1
    assert money_of(alice, generation) == {
        "spent": [generation.cost],
        "refunded": [],
        "balance": -generation.cost,
    }


@pytest.mark.parametrize("mode", TRANSIENT)
def test_a_transient_failure_that_persists_fails_after_three_attempts_and_refunds_once(
    upstream, finished, alice, settings, mode
):
    if mode == "timeout":
        settings.OPENAI_TIMEOUT_SECONDS = TIMEOUT_SECONDS
    upstream.fail_next(mode, mode, mode)

    generation = generate(alice, finished, spec())

    message, code = TRANSIENT[mode]
    assert generation.status == Status.FAILED
    assert (generation.error, generation.error_code) == (message, code)
    assert generation.attempts == 3 and len(upstream.requests) == 3
    assert generation.images.count() == 0
    assert money_of(alice, generation) == {
        "spent": [generation.cost],
        "refunded": [generation.cost],
        "balance": 0,
    }


@pytest.mark.parametrize("mode", REJECTED)
def test_a_rejection_fails_at_once_after_one_attempt_and_refunds(upstream, finished, alice, mode):
    upstream.fail_next(mode)

    generation = generate(alice, finished, spec())

    message, code = REJECTED[mode]
    assert generation.status == Status.FAILED
    assert (generation.error, generation.error_code) == (message, code)
    assert generation.attempts == 1 and len(upstream.requests) == 1
    assert money_of(alice, generation) == {
        "spent": [generation.cost],
        "refunded": [generation.cost],
        "balance": 0,
    }


def test_retries_wait_longer_each_time(upstream, finished, alice, settings, caplog):
    caplog.set_level(logging.INFO, logger="studio.engine.runner")
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 0.3
    upstream.fail_next("500", "500", "500")

    generation = generate(alice, finished, spec(partial_images=0))

    assert [line["outcome"] for line in attempt_logs(caplog, generation)] == [
        "retrying",
        "retrying",
        "failed",
    ]
    ended = [record.created for record in caplog.records if "generation_attempt" in record.getMessage()]
    assert ended[1] - ended[0] >= 0.3 and ended[2] - ended[1] >= 0.6
    assert generation.status == Status.FAILED and generation.attempts == 3


def test_a_streamed_success_records_what_the_upstream_reported(upstream, finished, alice, caplog):
    caplog.set_level(logging.INFO, logger="studio.engine.runner")
    upstream.latency = 0.2
    wanted = spec(aspect_ratio="3:2", quality="high", output_format="webp", partial_images=2)

    generation = generate(alice, finished, wanted)

    assert generation.status == Status.SUCCEEDED, generation.error
    assert generation.attempts == 1 and len(upstream.requests) == 1
    assert generation.partial_count == 2
    assert (generation.result_size, generation.result_quality, generation.result_format) == (
        "1536x1024",
        "high",
        "webp",
    )
    assert generation.upstream_request_id == "req_fake_0001"
    assert generation.upstream_latency_ms >= 200
    assert generation.revised_prompt == ""  # streams carry no revised prompt
    usage = generation.usage
    assert usage["output_tokens"] == 272 and usage["input_tokens"] == 4
    assert usage["total_tokens"] == 276
    assert usage["details"]["input_tokens_details"] == {"text_tokens": 4, "image_tokens": 0}
    image = generation.images.get()
    with image.file.open("rb") as handle:
        stored = PillowImage.open(io.BytesIO(handle.read()))
        assert (stored.format, stored.size) == ("WEBP", (1536, 1024))

    [line] = attempt_logs(caplog, generation)
    assert line["event"] == "generation_attempt" and line["outcome"] == "succeeded"
    assert line["provider"] == "openai" and line["attempt"] == 1
    assert line["upstream_request_id"] == "req_fake_0001" and line["size"] == "1536x1024"
    assert line["usage"]["total_tokens"] == 276 and line["latency_ms"] >= 200


def test_a_plain_answer_records_the_revised_prompt(upstream, finished, alice):
    generation = generate(alice, finished, spec(partial_images=0))

    assert generation.status == Status.SUCCEEDED, generation.error
    assert generation.revised_prompt == "a lighthouse at dusk (revised)"
    assert generation.upstream_request_id == "req_fake_0001"


def test_each_attempt_writes_one_structured_log_line(upstream, finished, alice, caplog):
    caplog.set_level(logging.INFO, logger="studio.engine.runner")
    upstream.fail_next("429_rate_limit")

    generation = generate(alice, finished, spec())

    lines = attempt_logs(caplog, generation)
    assert [(line["attempt"], line["outcome"]) for line in lines] == [(1, "retrying"), (2, "succeeded")]
    assert lines[0]["status"] == 429 and lines[0]["error_code"] == "rate_limit_exceeded"
    assert (
        lines[0]["upstream_request_id"] == "req_fake_0001"
        and lines[1]["upstream_request_id"] == "req_fake_0002"
    )
    assert generation.upstream_request_id == "req_fake_0002"


def test_an_edit_sends_every_reference_as_an_image_part_and_the_mask(upstream, finished, alice):
    first = png_bytes((96, 64), color=(200, 30, 30, 255))
    second = png_bytes((64, 64), color=(30, 30, 200, 255), mode="RGB")
    mask = png_bytes((96, 64), color=(0, 0, 0, 0))
    references = [SubmittedImage(check_image(first)), SubmittedImage(check_image(second))]

    generation = generate(
        alice,
        finished,
        spec(input_images=2, has_mask=True),
        references=references,
        mask=SubmittedImage(check_image(mask)),
    )

    assert generation.status == Status.SUCCEEDED, generation.error
    [request] = upstream.requests
    assert request.path == "/v1/images/edits"
    assert request.image_parts == 2 and request.has_mask
    assert [upload.name for upload in request.files] == ["image[]", "image[]", "mask"]
    assert [upload.data for upload in request.files] == [first, second, mask]
    assert request.fields["prompt"] == "a lighthouse at dusk" and request.fields["stream"] == "true"
    assert generation.usage["details"]["input_tokens_details"]["image_tokens"] == 130


def test_a_result_without_an_image_or_with_an_unreadable_one_is_retried(
    finished, alice, settings, monkeypatch
):
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 0.01

    class BrokenThenFine(LocalProvider):
        answers = [[FinalImage(data=b"these bytes are no image")], []]

        def generate(self, spec, *, images, mask):
            if self.answers:
                yield Completed(images=self.answers.pop(0), request_id="req_broken")
                return
            yield from super().generate(spec, images=images, mask=mask)

    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: BrokenThenFine())
    generation = finished.wait(
        generation_submit(
            membership=personal_membership(alice), spec=spec(partial_images=0), provider="local"
        )
    )

    assert generation.status == Status.SUCCEEDED, generation.error
    assert generation.attempts == 3 and generation.images.count() == 1
    assert money_of(alice, generation) == {
        "spent": [generation.cost],
        "refunded": [],
        "balance": -generation.cost,
    }
