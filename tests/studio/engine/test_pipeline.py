"""The whole pipeline with real parts: a Celery worker started in this process, consuming from real Redis
(REDIS_URL, else the embedded one `make test` starts), the runner, the local provider, the channel layer on
Redis, and a websocket client of the workspace."""

import io
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from PIL import Image as PillowImage

from accounts.models import EntryKind, LedgerEntry
from studio.engine.providers import ProviderError, Rejected
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status
from tests.helpers import personal_membership
from tests.websocket import communicator_for, receive_all, session_headers
from tests.workers import new_queue, worker_in_process

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings):
    """A real worker (thread pool) on a queue of this test's own, so nothing else's tasks reach it."""
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 0.05
    settings.LOCAL_PROVIDER_STEP_SECONDS = 0.2
    queue = new_queue()
    with worker_in_process(queue):
        yield queue


def wait_for(generation: Generation, statuses: tuple[str, ...], timeout: float = 30) -> Generation:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            generation.refresh_from_db()
            if generation.status in statuses:
                return generation
            time.sleep(0.1)
    finally:
        connection.close()  # this runs in a helper thread; leave no connection behind
    raise AssertionError(f"generation stayed {generation.status} (stage {generation.stage!r})")


def run_and_listen(user, spec: GenerationSpec, timeout: float = 30) -> tuple[Generation, list[str]]:
    """Submit as the user while their websocket listens; return the finished generation and the messages."""
    membership = personal_membership(user)
    headers = session_headers(user)

    async def scenario():
        communicator = communicator_for(headers, membership.workspace_id)
        connected, _ = await communicator.connect()
        assert connected
        generation = await sync_to_async(generation_submit)(membership=membership, spec=spec)
        # Not thread-sensitive: the consumer needs the main thread meanwhile, as it would under Daphne.
        finished = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
        await sync_to_async(wait_for, thread_sensitive=False)(generation, finished, timeout)
        messages = await receive_all(communicator, quiet_for=1.0)
        await communicator.disconnect()
        return generation, messages

    return async_to_sync(scenario)()


def test_a_generation_runs_to_success_with_live_updates(worker, alice):
    spec = GenerationSpec.build(prompt="a lighthouse at dusk", partial_images=2)
    generation, messages = run_and_listen(alice, spec)

    assert generation.status == Status.SUCCEEDED, generation.error
    assert generation.attempts == 1 and generation.partial_count == 2
    assert generation.result_size == "1024x1024" and generation.usage["total_tokens"] > 0
    image = generation.images.get()
    with image.file.open("rb") as handle:
        stored = PillowImage.open(io.BytesIO(handle.read()))
        assert (stored.format, stored.size) == ("PNG", (1024, 1024))
    with image.thumbnail.open("rb") as handle:
        thumbnail = PillowImage.open(io.BytesIO(handle.read()))
        assert thumbnail.format == "WEBP" and max(thumbnail.size) <= 512

    cards = [message for message in messages if f'id="generation-{generation.pk}"' in message]
    assert any('data-status="running"' in card for card in cards)
    assert any(f"/generations/{generation.pk}/partial/" in card for card in cards), (
        "no partial image was shown"
    )
    assert 'data-status="succeeded"' in cards[-1]
    assert f"/images/{image.pk}/thumbnail/" in cards[-1]
    alice.refresh_from_db()
    assert alice.credits == 900


class ExplodingProvider:
    name = "exploding"

    def __init__(self, error: Exception):
        self.error = error
        self.calls = 0

    def generate(self, spec, *, images, mask):
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected_message", "expected_calls"),
    [
        (
            Rejected("The request was blocked by the safety system."),
            "The request was blocked by the safety system.",
            1,
        ),
        (RuntimeError("kaboom"), "Something went wrong on our side", 1),
    ],
)
def test_a_failing_provider_fails_the_card_and_refunds(
    worker, alice, monkeypatch, error, expected_message, expected_calls
):
    provider = ExplodingProvider(error)
    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: provider)
    generation, messages = run_and_listen(alice, GenerationSpec.build(prompt="doomed", n=2))

    assert generation.status == Status.FAILED
    assert expected_message in generation.error
    assert provider.calls == expected_calls
    refund = LedgerEntry.objects.get(kind=EntryKind.REFUND)
    assert refund.amount == 200 and refund.reference == generation.ledger_reference
    alice.refresh_from_db()
    assert alice.credits == 1000
    assert expected_message in messages[-1] or any(expected_message in message for message in messages)


def test_transient_errors_are_retried_without_charging_again(worker, alice, monkeypatch):
    from studio.engine.providers import Transient
    from studio.engine.providers.local import LocalProvider

    class FlakyProvider(LocalProvider):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def generate(self, spec, *, images, mask):
            self.calls += 1
            if self.calls < 3:
                raise Transient("The image service is busy.", code="rate_limited", status=429)
            yield from super().generate(spec, images=images, mask=mask)

    provider = FlakyProvider()
    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: provider)
    generation, _ = run_and_listen(alice, GenerationSpec.build(prompt="third time lucky", partial_images=0))
    assert generation.status == Status.SUCCEEDED
    assert generation.attempts == 3 and provider.calls == 3
    assert LedgerEntry.objects.filter(kind=EntryKind.SPEND).count() == 1
    alice.refresh_from_db()
    assert alice.credits == 900


def test_transient_errors_past_the_retries_fail_and_refund(worker, alice, monkeypatch):
    from studio.engine.providers import Transient

    provider = ExplodingProvider(Transient("The image service timed out.", code="timeout"))
    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: provider)
    generation, _ = run_and_listen(alice, GenerationSpec.build(prompt="never"))
    assert generation.status == Status.FAILED and generation.attempts == 3 and provider.calls == 3
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_provider_errors_are_typed():
    assert not Rejected("x").retryable
    assert issubclass(Rejected, ProviderError)
