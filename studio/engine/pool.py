"""The upstream pool: which account serves an attempt, with what provider, and what its answers say about
its health.

Accounts are `UpstreamAccount` rows. For each attempt the pool takes, among the enabled accounts that serve
the spec's tier, are not cooling down (a 429) and whose breaker is not open (repeated failures), the highest
priority that has a free slot, choosing by weight among accounts of equal priority. A slot is a member of a
Redis sorted set per account, scored by when it expires, so the cap holds across every worker process and
machine and a slot of a killed worker frees itself. With no account configured, OPENAI_API_KEY and
OPENAI_BASE_URL act as one account of unlimited slots, and `make run` keeps working as it did; once any
account exists (even disabled), the settings' key is out of use.

Health: a rate limit cools the account down for its Retry-After (else UPSTREAM_COOLDOWN_SECONDS);
UPSTREAM_BREAKER_FAILURES transient failures in a row open its breaker for UPSTREAM_BREAKER_SECONDS, after
which one attempt at a time probes it (half-open) until one succeeds; a refused key or exhausted quota
disables it, with the reason, and tells the admins by email.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.core.mail import mail_admins
from django.db import connection
from django.db.models import Aggregate, Count, F, IntegerField, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction
from studio.engine.providers import AccountUnavailable, Provider, ProviderError, get_provider
from studio.engine.providers.base import Rejected, TaskProvider
from studio.engine.providers.tasks import TASK_PROVIDERS, TaskServiceProvider
from studio.engine.spec import GenerationSpec
from studio.models import TASK_KINDS, UpstreamAccount, UpstreamAttempt, UpstreamKind

logger = logging.getLogger(__name__)

NO_ACCOUNT_MESSAGE = (
    "No image service can take this request now: every account of the studio is busy, cooling down or "
    "disabled. Your credits were refunded; try again in a few minutes."
)
NO_TIER_MESSAGE = "No image service account of the studio serves {tier} images. Your credits were refunded."
NO_CAPABLE_MESSAGE = (
    "No image service account of the studio can make this request ({reasons}). Your credits were refunded."
)

# KEYS[1]: the account's slots; ARGV: now, expiry of the new slot, cap, token. 1 when the slot was taken.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
    redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 60)
    return 1
end
return 0
"""


class NoAccount(ProviderError):
    """No account can serve the attempt (none serves its tier, or all are busy, cooling down or off)."""

    retryable = False


@dataclass
class Lease:
    """An attempt's account (None for the settings' account or the offline engine) and its provider. A
    task-style attempt outlives the block: `keep_slot` hands its slot over to the polls that follow."""

    account: UpstreamAccount | None
    provider: Provider | TaskProvider
    slot: str | None = None
    kept: bool = False

    def keep_slot(self) -> str:
        """The slot stays taken when the block ends; release it with `release_slot` (or it expires)."""
        if self.slot is None:
            raise RuntimeError("this lease holds no slot")
        self.kept = True
        return self.slot


_PREFIX = "studio"


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def _slots_key(account: UpstreamAccount | int) -> str:
    account_id = account if isinstance(account, int) else account.pk
    return f"{_PREFIX}:upstream-slots:{account_id}"


def slot_seconds() -> float:
    """How long a slot lives without being released (or refreshed, for a task-style account's polls): the
    longest attempt, and a margin."""
    return max(settings.OPENAI_TIMEOUT_SECONDS, settings.OPENAI_TIMEOUT_4K_SECONDS) + 60


def uses_pool() -> bool:
    """Whether any account is configured (enabled or not): only then is the settings' key out of use."""
    return UpstreamAccount.objects.exists()


def slots_in_use(account: UpstreamAccount) -> int:
    client = _redis(settings.REDIS_URL)
    client.zremrangebyscore(_slots_key(account), "-inf", time.time())
    return int(client.zcard(_slots_key(account)))  # type: ignore[arg-type]  # a sync client


def _take_slot(account: UpstreamAccount) -> str | None:
    token = uuid.uuid4().hex
    now = time.time()
    try:
        taken = _redis(settings.REDIS_URL).eval(
            _TAKE_SLOT,
            1,
            _slots_key(account),
            str(now),
            str(now + slot_seconds()),
            str(account.max_concurrent),
            token,
        )
    except redis.RedisError:
        # Without Redis no cap can be counted: serve rather than fail every generation.
        logger.warning("upstream slots unavailable (Redis); %s serves uncounted", account, exc_info=True)
        return token
    return token if taken else None


def release_slot(account: UpstreamAccount | int, token: str) -> None:
    try:
        _redis(settings.REDIS_URL).zrem(_slots_key(account), token)
    except redis.RedisError:
        logger.warning("could not release a slot of %s; it expires by itself", account, exc_info=True)


def refresh_slot(account: UpstreamAccount | int, token: str) -> None:
    """A kept slot lives on while its tasks are polled (and comes back if it expired meanwhile)."""
    key = _slots_key(account)
    try:
        # The set itself expires a minute after its latest slot would (as _TAKE_SLOT sets it): move that on
        # too (never earlier: this slot is now the latest), or a long poll outlives the set and every slot of
        # the account with it.
        with _redis(settings.REDIS_URL).pipeline(transaction=False) as pipe:
            pipe.zadd(key, {token: time.time() + slot_seconds()})
            pipe.expire(key, math.ceil(slot_seconds()) + 60)
            pipe.execute()
    except redis.RedisError:
        logger.warning("could not refresh a slot of %s", account, exc_info=True)


@dataclass
class _Choice:
    """What the enabled accounts offer an attempt now, from one read of them."""

    ordered: list[UpstreamAccount]  # those that may serve now, best first
    any_enabled: bool  # any account enabled at all
    serves_tier: bool  # any enabled account serves the tier
    coming_back: bool  # one that serves the tier is only cooling down or has its breaker open
    # Why the accounts that serve the tier cannot make this spec, when none of them can (else empty).
    unable: list[str]


def _choose(spec: GenerationSpec, avoid: set[int]) -> _Choice:
    """Highest priority first, within one priority an order drawn by weight; the accounts this generation
    already failed on (`avoid`) only when no other may serve."""
    now = timezone.now()
    enabled = list(UpstreamAccount.objects.filter(enabled=True))
    in_tier = [account for account in enabled if spec.tier in account.served_tiers()]
    problems = {account.pk: capability_problem(account, spec) for account in in_tier}
    serving = [account for account in in_tier if problems[account.pk] is None]
    unable = [] if serving else [f"{account.name}: {problems[account.pk]}" for account in in_tier]
    resting = [
        account
        for account in serving
        if (account.cooldown_until and account.cooldown_until > now)
        or (account.breaker_open_until and account.breaker_open_until > now)
    ]
    ready = [account for account in serving if account not in resting]
    preferred = [account for account in ready if account.pk not in avoid] or ready
    ordered: list[UpstreamAccount] = []
    for priority in sorted({account.priority for account in preferred}, reverse=True):
        group = [account for account in preferred if account.priority == priority]
        while group:
            chosen = random.choices(group, weights=[account.weight for account in group])[0]
            ordered.append(chosen)
            group.remove(chosen)
    return _Choice(ordered, bool(enabled), bool(serving), bool(resting), unable)


def capability_problem(account: UpstreamAccount, spec: GenerationSpec) -> str | None:
    """Why the account's kind cannot make the spec (a task service without a mask, say), or None."""
    if account.kind not in TASK_KINDS:
        return None
    kind = TASK_PROVIDERS[account.kind]
    return kind(
        api_key="", base_url=account.base_url, public_links=bool(settings.STUDIO_PUBLIC_URL)
    ).can_serve(spec)


def _probe_allowed(account: UpstreamAccount) -> bool:
    """A breaker that was open lets one attempt at a time through (half-open) until one succeeds."""
    if account.breaker_open_until is None:
        return True
    try:
        return bool(
            _redis(settings.REDIS_URL).set(
                f"{_PREFIX}:upstream-probe:{account.pk}", 1, nx=True, ex=int(slot_seconds())
            )
        )
    except redis.RedisError:
        return True


def _end_probe(account: UpstreamAccount) -> None:
    with suppress(redis.RedisError):
        _redis(settings.REDIS_URL).delete(f"{_PREFIX}:upstream-probe:{account.pk}")


def _settings_lease(provider_name: str) -> Lease:
    return Lease(account=None, provider=get_provider(provider_name))


def provider_for(account: UpstreamAccount) -> Provider | TaskProvider:
    from studio.engine.providers.openai import OpenAIProvider, OpenAIResponsesProvider

    if account.kind in TASK_KINDS:
        return TASK_PROVIDERS[account.kind](
            api_key=account.api_key,
            base_url=account.base_url,
            timeout_seconds=settings.UPSTREAM_TASK_REQUEST_TIMEOUT_SECONDS,
            public_links=bool(settings.STUDIO_PUBLIC_URL),
        )
    kind = OpenAIResponsesProvider if account.kind == UpstreamKind.OPENAI_RESPONSES else OpenAIProvider
    return kind(
        api_key=account.api_key,
        base_url=account.base_url or None,
        model=account.model,
        timeout_seconds=settings.OPENAI_TIMEOUT_SECONDS,
        timeout_4k_seconds=settings.OPENAI_TIMEOUT_4K_SECONDS,
        images_at_once=settings.WORKER_IMAGE_CONCURRENCY,
    )


@contextmanager
def lease(
    provider_name: str,
    spec: GenerationSpec,
    *,
    avoid: set[int],
    wait_seconds: float,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[Lease]:
    """An account for one attempt, its slot held until the block ends. Raises NoAccount when none can
    serve within `wait_seconds` (accounts at their cap are waited for; `on_wait` is called meanwhile)."""
    if provider_name != "openai" or not uses_pool():
        yield _settings_lease(provider_name)
        return
    deadline = time.monotonic() + wait_seconds
    waited_since = time.monotonic()
    while True:
        choice = _choose(spec, avoid)
        if not choice.serves_tier:
            if choice.unable:
                reasons = "; ".join(choice.unable)
                raise NoAccount(NO_CAPABLE_MESSAGE.format(reasons=reasons), code="no_account")
            if choice.any_enabled:
                raise NoAccount(NO_TIER_MESSAGE.format(tier=spec.tier), code="no_account")
            raise NoAccount(NO_ACCOUNT_MESSAGE, code="no_account")
        for account in choice.ordered:
            if not _probe_allowed(account):
                continue
            token = _take_slot(account)
            if token is None:
                if account.breaker_open_until is not None:
                    _end_probe(account)
                continue
            leased = Lease(account=account, provider=provider_for(account), slot=token)
            try:
                yield leased
            finally:
                if not leased.kept:
                    release_slot(account, token)
                if account.breaker_open_until is not None:
                    _end_probe(account)
            return
        if (not choice.ordered and not choice.coming_back) or time.monotonic() > deadline:
            raise NoAccount(NO_ACCOUNT_MESSAGE, code="no_account")
        if on_wait is not None and time.monotonic() - waited_since > 20:
            on_wait()
            waited_since = time.monotonic()
        time.sleep(settings.UPSTREAM_SLOT_POLL_SECONDS)


def record_success(account: UpstreamAccount | None) -> None:
    if account is None:
        return
    UpstreamAccount.objects.filter(pk=account.pk).filter(
        Q(consecutive_failures__gt=0) | Q(breaker_open_until__isnull=False)
    ).update(consecutive_failures=0, breaker_open_until=None)


def record_failure(account: UpstreamAccount | None, error: ProviderError) -> bool:
    """Update the account's health from a failed attempt. True when the generation's next attempt should
    prefer another account (a rate-limited one is kept out by its cooldown, a refused one is disabled)."""
    if account is None:
        return False
    now = timezone.now()
    if isinstance(error, AccountUnavailable):
        if error.reason == "rate_limited":
            seconds = settings.UPSTREAM_COOLDOWN_SECONDS if error.retry_after is None else error.retry_after
            until = now + timedelta(seconds=seconds)
            UpstreamAccount.objects.filter(pk=account.pk).update(cooldown_until=until)
            logger.warning("upstream account %s is rate limited: cooling down %g s", account, seconds)
        else:
            _disable(account, f"{error.message} (HTTP {error.status}, {error.code or error.reason})")
        return False
    if not error.retryable:
        return False  # the request itself was refused: nothing wrong with the account
    mine = UpstreamAccount.objects.filter(pk=account.pk)
    mine.update(consecutive_failures=F("consecutive_failures") + 1)
    opened = mine.filter(consecutive_failures__gte=settings.UPSTREAM_BREAKER_FAILURES).update(
        breaker_open_until=now + timedelta(seconds=settings.UPSTREAM_BREAKER_SECONDS)
    )
    if opened:
        logger.warning("upstream account %s kept failing: breaker open", account)
    return True


def _disable(account: UpstreamAccount, reason: str) -> None:
    changed = UpstreamAccount.objects.filter(pk=account.pk, enabled=True).update(
        enabled=False, disabled_reason=reason[:300]
    )
    if not changed:
        return
    logger.error("upstream account %s disabled: %s", account, reason)
    audit.record(
        AuditAction.UPSTREAM_ACCOUNT_CHANGED,
        actor_label="the studio",
        target=account.name,
        change="disabled",
        reason=reason[:300],
    )
    try:
        mail_admins(
            f"Image service account {account.name} was disabled",
            f"The studio stopped using the account {account.name} ({account.base_url or 'OpenAI'}):\n\n"
            f"{reason}\n\nFix its key or quota, then enable it again in the admin (Upstream accounts).",
        )
    except Exception:
        logger.warning("could not email the admins about %s", account, exc_info=True)


def test_connection(account: UpstreamAccount) -> tuple[bool, str]:
    """Ask the account's service for its models (costs nothing): (worked, what a person reads)."""
    import openai

    from studio.engine.providers.openai import OpenAIProvider, translate_error

    provider = provider_for(account)
    if isinstance(provider, TaskServiceProvider):
        return _test_task_service(provider)
    if not isinstance(provider, OpenAIProvider) or provider.client is None:
        return False, "No API key is stored for it."
    try:
        names = [model.id for model in provider.client.with_options(timeout=10).models.list()]
    except openai.APIError as error:
        problem = translate_error(error)
        return False, f"{problem.message} ({problem.code or 'error'}, HTTP {problem.status or '-'})"
    if account.model in names:
        return True, f"Connected; it offers {account.model}."
    shown = ", ".join(names[:8]) or "none"
    return True, f"Connected, but {account.model} is not among the models it lists ({shown})."


def _test_task_service(provider: TaskServiceProvider) -> tuple[bool, str]:
    """A task service lists no models: ask for a task that does not exist (costs nothing). Not found means
    the key was accepted; a refused key, a spent balance or no answer say what is wrong."""
    try:
        provider.poll("studio-connection-test")
    except AccountUnavailable as problem:
        return False, f"{problem.message} ({problem.code or problem.reason}, HTTP {problem.status or '-'})"
    except Rejected as problem:
        return (
            True,
            f"Connected; the key was accepted (asked for no task, it answered HTTP {problem.status}).",
        )
    except ProviderError as problem:
        return False, f"{problem.message} ({problem.code or 'error'}, HTTP {problem.status or '-'})"
    return True, "Connected; the key was accepted."


USAGE_WINDOWS = (
    ("Last hour", timedelta(hours=1)),
    ("Last day", timedelta(days=1)),
    ("Last 30 days", timedelta(days=30)),
)


@dataclass
class UsageWindow:
    label: str
    requests: int
    succeeded: int
    failures: dict[str, int]
    images: int
    tokens: int
    latency_p50_ms: int | None
    latency_p95_ms: int | None
    estimated_cost: Decimal | None


def usage(account: UpstreamAccount) -> list[UsageWindow]:
    """The account's requests over the last hour, day and 30 days, from its recorded attempts."""
    now = timezone.now()
    windows = []
    for label, span in USAGE_WINDOWS:
        attempts = UpstreamAttempt.objects.filter(account=account, at__gte=now - span)
        totals = attempts.aggregate(
            requests=Count("id"),
            succeeded=Count("id", filter=Q(outcome="succeeded")),
            images=Coalesce(Sum("images"), 0),
            tokens=Coalesce(Sum("input_tokens"), 0) + Coalesce(Sum("output_tokens"), 0),
        )
        failures = dict(
            attempts.exclude(outcome="succeeded")
            .values_list("error_code")
            .annotate(count=Count("id"))
            .order_by("-count")
            .values_list("error_code", "count")
        )
        p50, p95 = _latency_percentiles(attempts.filter(outcome="succeeded"))
        windows.append(
            UsageWindow(
                label=label,
                requests=totals["requests"],
                succeeded=totals["succeeded"],
                failures={code or "error": count for code, count in failures.items()},
                images=totals["images"],
                tokens=totals["tokens"],
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                estimated_cost=_cost(account, totals["images"], totals["tokens"]),
            )
        )
    return windows


class _PercentileDisc(Aggregate):
    """PostgreSQL's percentile_disc: the first value at or past a fraction of the ordered values."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = IntegerField()


def _latency_percentiles(succeeded: QuerySet[UpstreamAttempt]) -> tuple[int | None, int | None]:
    """p50 and p95 of the latencies: computed by PostgreSQL over any number of attempts; elsewhere (SQLite,
    for development) over the rows here."""
    if connection.vendor == "postgresql":
        figures = succeeded.aggregate(
            p50=_PercentileDisc("latency_ms", fraction=0.5), p95=_PercentileDisc("latency_ms", fraction=0.95)
        )
        return figures["p50"], figures["p95"]
    ordered = list(succeeded.order_by("latency_ms").values_list("latency_ms", flat=True))
    if not ordered:
        return None, None
    return tuple(  # type: ignore[return-value]
        ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]
        for fraction in (0.5, 0.95)
    )


def _cost(account: UpstreamAccount, images: int, tokens: int) -> Decimal | None:
    if account.price_per_image is None and account.price_per_million_tokens is None:
        return None
    cost = Decimal(0)
    if account.price_per_image is not None:
        cost += account.price_per_image * images
    if account.price_per_million_tokens is not None:
        cost += account.price_per_million_tokens * Decimal(tokens) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.01"))
