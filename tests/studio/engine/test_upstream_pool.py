"""The upstream pool end to end: a real worker, two fake OpenAI Images APIs on 127.0.0.1 as two accounts,
and the money checked after every case."""

import time
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core import mail

from accounts import crypto, ledger
from accounts.models import AuditAction, AuditEvent, EntryKind, LedgerEntry
from studio.engine import pool
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Image, Status, UpstreamAccount, UpstreamAttempt
from tests.fake_upstream import FakeUpstream
from tests.helpers import personal_membership
from tests.workers import FinishedTasks, new_queue, worker_in_process

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

TASKS = FinishedTasks()


@pytest.fixture(autouse=True)
def _listening_for_finished_tasks():
    with TASKS.listening():
        yield


@pytest.fixture
def upstream_a():
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream_b():
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def studio_on_accounts(settings):
    """The studio draws from upstream accounts only: no key in the settings to fall back on."""
    settings.STUDIO_PROVIDER = "openai"
    settings.OPENAI_API_KEY = ""
    settings.GENERATION_MAX_RETRIES = 2
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 0.05
    settings.UPSTREAM_SLOT_POLL_SECONDS = 0.05
    settings.ADMINS = [("Operator", "operator@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def worker(studio_on_accounts):
    with worker_in_process(new_queue(), concurrency=20):
        yield


def account(name: str, upstream: FakeUpstream, **fields) -> UpstreamAccount:
    made = UpstreamAccount(name=name, base_url=upstream.base_url, **fields)
    made.set_api_key(f"key-of-{name}")
    made.save()
    return made


def submit(user, count: int = 1, **spec) -> list[Generation]:
    membership = personal_membership(user)
    return [
        generation_submit(membership=membership, spec=GenerationSpec.build(prompt=f"harbour {n}", **spec))
        for n in range(count)
    ]


def wait_all(generations: list[Generation], timeout: float = 60) -> list[Generation]:
    """Wait until every generation's task has ended (after its account's health and usage are recorded)."""
    deadline = time.monotonic() + timeout
    for generation in generations:
        TASKS.wait(generation, timeout=max(0.1, deadline - time.monotonic()))
    return list(Generation.objects.filter(pk__in=[generation.pk for generation in generations]))


def money_of(generation: Generation) -> tuple[int, int]:
    """(spent, refunded) for the generation, from the ledger."""
    entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
    spent = -sum(entry.amount for entry in entries if entry.kind == EntryKind.SPEND)
    refunded = sum(entry.amount for entry in entries if entry.kind == EntryKind.REFUND)
    return spent, refunded


def keys_used(upstream: FakeUpstream) -> set[str]:
    return {request.headers.get("authorization", "") for request in upstream.requests}


def test_the_highest_priority_serves_with_its_own_key_and_model(worker, alice, upstream_a, upstream_b):
    first = account("first", upstream_a, priority=10, model="gpt-image-2")
    account("second", upstream_b, priority=0)
    done = wait_all(submit(alice, 3))
    assert {generation.status for generation in done} == {Status.SUCCEEDED}
    assert {generation.upstream_account_id for generation in done} == {first.pk}
    assert len(upstream_a.requests) == 3 and not upstream_b.requests
    assert keys_used(upstream_a) == {"Bearer key-of-first"}
    assert {request.params["model"] for request in upstream_a.requests} == {"gpt-image-2"}


def test_a_rate_limited_account_cools_down_and_the_next_serves_once(worker, alice, upstream_a, upstream_b):
    busy = account("busy", upstream_a, priority=10)
    spare = account("spare", upstream_b, priority=0)
    upstream_a.fail_always("429_rate_limit")
    (generation,) = wait_all(submit(alice))
    assert generation.status == Status.SUCCEEDED
    assert generation.upstream_account_id == spare.pk
    assert Image.objects.filter(generation=generation).count() == 1  # exactly the image asked for
    assert money_of(generation) == (generation.cost, 0)  # charged once, nothing refunded
    busy.refresh_from_db()
    assert busy.enabled and busy.cooldown_until is not None  # Retry-After: 1 s, then it serves again
    assert len(upstream_a.requests) == 1


def test_a_refused_key_disables_the_account_tells_the_admins_and_the_next_serves(
    worker, alice, upstream_a, upstream_b
):
    broken = account("broken", upstream_a, priority=10)
    spare = account("spare", upstream_b, priority=0)
    upstream_a.fail_always("401_invalid_api_key")
    (generation,) = wait_all(submit(alice))
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == spare.pk
    assert money_of(generation) == (generation.cost, 0)
    broken.refresh_from_db()
    assert not broken.enabled
    assert "credentials" in broken.disabled_reason
    assert [message.subject for message in mail.outbox] == [
        "[Django] Image service account broken was disabled"
    ]
    (disabled,) = AuditEvent.objects.filter(action=AuditAction.UPSTREAM_ACCOUNT_CHANGED)
    assert (disabled.actor_label, disabled.target, disabled.details["change"]) == (
        "the studio",
        "broken",
        "disabled",
    )
    # Later generations go straight to the spare account.
    wait_all(submit(alice))
    assert len(upstream_a.requests) == 1


def test_a_stream_cut_midway_is_drawn_again_on_the_other_account_with_one_charge(
    worker, alice, upstream_a, upstream_b
):
    account("flaky", upstream_a, priority=10)
    steady = account("steady", upstream_b, priority=0)
    upstream_a.fail_next("cut_stream")
    (generation,) = wait_all(submit(alice, partial_images=2))
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == steady.pk
    assert Image.objects.filter(generation=generation).count() == 1
    assert money_of(generation) == (generation.cost, 0)


def test_with_every_account_down_the_generation_fails_clearly_and_is_refunded(
    worker, alice, upstream_a, upstream_b
):
    account("one", upstream_a, priority=10)
    account("two", upstream_b, priority=0)
    upstream_a.fail_always("401_invalid_api_key")
    upstream_b.fail_always("429_insufficient_quota")
    balance = alice.credits
    (generation,) = wait_all(submit(alice))
    assert generation.status == Status.FAILED
    assert "refunded" in generation.error
    assert money_of(generation) == (generation.cost, generation.cost)
    alice.refresh_from_db()
    assert alice.credits == balance
    assert not UpstreamAccount.objects.filter(enabled=True).exists()


def test_a_fixed_tier_gateway_model_gets_only_its_tier(worker, alice, upstream_a, upstream_b):
    small = account("gateway-1k", upstream_a, model="gpt-image-2-1k", priority=10)
    large = account("gateway-4k", upstream_b, model="gpt-image-2-4k", priority=0)
    (four_k,) = wait_all(submit(alice, resolution="4K"))
    (one_k,) = wait_all(submit(alice, resolution="1K"))
    assert four_k.upstream_account_id == large.pk  # never the -1k account, whatever its priority
    assert one_k.upstream_account_id == small.pk
    assert [request.params["model"] for request in upstream_b.requests] == ["gpt-image-2-4k"]


def test_no_account_for_the_tier_fails_at_once_with_a_refund(worker, alice, upstream_a):
    account("small-only", upstream_a, tiers="1K")
    (generation,) = wait_all(submit(alice, resolution="4K"))
    assert generation.status == Status.FAILED
    assert "4K" in generation.error
    assert money_of(generation) == (generation.cost, generation.cost)
    assert not upstream_a.requests


def test_caps_hold_for_two_hundred_generations_at_once(studio_on_accounts, alice, upstream_a, upstream_b):
    upstream_a.latency = upstream_b.latency = 0.3
    account("capped-5", upstream_a, max_concurrent=5)
    account("capped-10", upstream_b, max_concurrent=10)
    ledger.adjust(user=alice, amount=200 * 100, kind=EntryKind.GRANT, reason="test")
    with worker_in_process(new_queue(), concurrency=60):
        done = wait_all(submit(alice, 200, partial_images=0), timeout=240)
    assert {generation.status for generation in done} == {Status.SUCCEEDED}
    assert upstream_a.peak_in_flight <= 5
    assert upstream_b.peak_in_flight <= 10
    assert len(upstream_a.requests) + len(upstream_b.requests) == 200
    assert upstream_a.requests and upstream_b.requests  # both served
    for one in UpstreamAccount.objects.all():
        assert pool.slots_in_use(one) == 0  # every slot given back


def test_a_key_rotation_keeps_every_account_usable(worker, alice, upstream_a, settings):
    kept = account("kept", upstream_a)
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.ENCRYPTION_KEYS]
    kept.refresh_from_db()
    assert kept.api_key == "key-of-kept"  # the old key still reads it
    kept.api_key_encrypted = crypto.reencrypt(kept.api_key_encrypted)
    kept.save()
    (generation,) = wait_all(submit(alice))
    assert generation.status == Status.SUCCEEDED
    assert keys_used(upstream_a) == {"Bearer key-of-kept"}


def test_repeated_failures_open_the_breaker_then_one_probe_closes_it(
    worker, alice, upstream_a, upstream_b, settings
):
    settings.UPSTREAM_BREAKER_FAILURES = 2
    settings.UPSTREAM_BREAKER_SECONDS = 1.0
    failing = account("failing", upstream_a, priority=10)
    account("backup", upstream_b, priority=0)
    upstream_a.fail_always("500")
    for _ in range(2):
        (generation,) = wait_all(submit(alice))
        assert generation.status == Status.SUCCEEDED  # drawn by the backup after the failure
        assert money_of(generation) == (generation.cost, 0)
    failing.refresh_from_db()
    assert failing.consecutive_failures == 2 and failing.breaker_open_until is not None
    # Open: the next generation goes straight to the backup.
    wait_all(submit(alice))
    assert len(upstream_a.requests) == 2
    # Past the breaker's time, one probe goes through; it succeeds and closes the breaker.
    upstream_a.fail_always(None)
    time.sleep(1.1)
    (probe,) = wait_all(submit(alice))
    assert probe.upstream_account_id == failing.pk
    failing.refresh_from_db()
    assert failing.consecutive_failures == 0 and failing.breaker_open_until is None


def test_each_attempt_counts_in_its_accounts_usage(worker, alice, upstream_a, upstream_b):
    busy = account("busy", upstream_a, priority=10)
    spare = account("spare", upstream_b, priority=0, price_per_image=Decimal("0.04"))
    upstream_a.fail_next("429_rate_limit")
    (generation,) = wait_all(submit(alice, n=2))
    assert generation.status == Status.SUCCEEDED
    hour_of_busy = pool.usage(busy)[0]
    assert (hour_of_busy.requests, hour_of_busy.succeeded, hour_of_busy.images) == (1, 0, 0)
    assert hour_of_busy.failures == {"rate_limit_exceeded": 1}
    assert hour_of_busy.estimated_cost is None  # no price set
    hour, day, month = pool.usage(spare)
    assert (hour.requests, hour.succeeded, hour.images) == (1, 1, 2)
    assert hour.tokens > 0 and hour.latency_p50_ms is not None
    assert hour.estimated_cost == Decimal("0.08")
    assert (day.requests, day.images, month.requests, month.images) == (1, 2, 1, 2)
    assert set(UpstreamAttempt.objects.values_list("generation_id", flat=True)) == {generation.pk}


def test_a_timeout_on_one_account_is_drawn_on_the_other_with_one_charge(
    worker, alice, upstream_a, upstream_b, settings
):
    settings.OPENAI_TIMEOUT_SECONDS = 1
    account("silent", upstream_a, priority=10)
    awake = account("awake", upstream_b, priority=0)
    upstream_a.fail_next("timeout")
    (generation,) = wait_all(submit(alice, partial_images=0))
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == awake.pk
    assert Image.objects.filter(generation=generation).count() == 1
    assert money_of(generation) == (generation.cost, 0)


def test_a_slot_left_by_a_dead_worker_frees_itself(studio_on_accounts, upstream_a):
    """Slots expire: one taken by a worker that died (never released) stops counting once it is due."""
    capped = account("capped", upstream_a, max_concurrent=1)
    redis = pool._redis(settings_redis_url())
    redis.zadd(pool._slots_key(capped), {"dead-worker": time.time() - 1})  # due a second ago
    redis.zadd(pool._slots_key(capped), {"live-worker": time.time() + 60})
    assert pool.slots_in_use(capped) == 1  # the dead one no longer counts
    assert pool._take_slot(capped) is None  # the live one fills the cap of 1
    redis.zrem(pool._slots_key(capped), "live-worker")
    token = pool._take_slot(capped)
    assert token is not None and pool.slots_in_use(capped) == 1
    pool.release_slot(capped, token)
    assert pool.slots_in_use(capped) == 0


def settings_redis_url() -> str:
    from django.conf import settings

    return settings.REDIS_URL


def test_usage_percentiles_are_the_values_at_half_and_ninety_five_percent(studio_on_accounts, upstream_a):
    """Computed by the database on PostgreSQL (percentile_disc), in Python on SQLite: the same figures."""
    measured = account("measured", upstream_a)
    UpstreamAttempt.objects.bulk_create(
        UpstreamAttempt(account=measured, outcome="succeeded", latency_ms=latency, images=1)
        for latency in range(100, 0, -1)
    )
    UpstreamAttempt.objects.create(
        account=measured, outcome="failed", latency_ms=99_999, error_code="timeout"
    )
    hour = pool.usage(measured)[0]
    assert (hour.latency_p50_ms, hour.latency_p95_ms) == (50, 95)  # failures are not counted
    assert (hour.requests, hour.succeeded, hour.failures) == (101, 100, {"timeout": 1})


def test_a_refreshed_slot_keeps_the_accounts_set_alive(studio_on_accounts, upstream_a):
    """A task-style attempt holds its slot across polls for longer than a slot lives: each refresh moves the
    slot's expiry and the set's own on."""
    polled = account("polled", upstream_a, max_concurrent=2)
    redis = pool._redis(settings_redis_url())
    token = pool._take_slot(polled)
    redis.expire(pool._slots_key(polled), 5)  # as if the set were about to expire
    pool.refresh_slot(polled, token)
    assert redis.ttl(pool._slots_key(polled)) > pool.slot_seconds()
    assert pool.slots_in_use(polled) == 1
    pool.release_slot(polled, token)
    assert pool.slots_in_use(polled) == 0
