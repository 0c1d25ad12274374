"""Bearer-key authentication and the per-key rate limit, as a ninja auth class."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from accounts.middleware import has_second_factor
from accounts.models import ApiKey, Membership
from studio.api.errors import forbidden, rate_limited, unauthorized


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    membership: Membership


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer KEY`. A missing header answers 401 (ninja's AuthenticationError, rendered in the
    dialect's shape); an unknown or revoked key, or an owner who left the workspace, 401 with the reason; the
    key of a member without a second factor, in a workspace that requires one, 403 until they set it up (as
    its pages are closed to them); past the key's rate limit, 429."""

    def authenticate(self, request: HttpRequest, token: str) -> Caller:
        return authenticate_key(token)


def authenticate_key(secret: str) -> Caller:
    secret = secret.strip()
    if not secret:
        raise unauthorized()
    key = ApiKey.authenticate(secret)
    if key is None:
        raise unauthorized("Invalid or revoked API key.")
    # One membership per user and workspace: no ordering to add, as first() would.
    found = Membership.objects.select_related("workspace", "user").filter(
        user=key.user, workspace=key.workspace
    )
    membership = next(iter(found[:1]), None)
    if membership is None or not key.user.is_active:
        raise unauthorized("This key's owner is no longer a member of its workspace.")
    if membership.workspace.require_two_factor and not has_second_factor(key.user):
        raise forbidden(
            "This workspace requires two-factor authentication: the key's owner must turn it on "
            "(Security page) before the key works again."
        )
    _check_rate_limit(key)
    # Record use at most once a minute per key, not on every call.
    if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return Caller(key=key, membership=membership)


def caller_of(request: HttpRequest) -> Caller:
    """The caller ninja's auth put on the request."""
    caller = getattr(request, "auth", None)
    if not isinstance(caller, Caller):
        raise unauthorized()
    return caller


def _check_rate_limit(key: ApiKey) -> None:
    limit = key.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return
    window = int(time.time() // 60)
    count = count_in_window(f"api-rate:{key.pk}:{window}", timeout=120)
    if count is not None and count > limit:  # None: Redis is unreachable, and the limit fails open
        raise rate_limited(limit)


def count_in_window(key: str, timeout: int) -> int | None:
    """One more in the counter `key`, which expires `timeout` seconds after its first count; None while the
    cache is unreachable. The studio's Redis cache (config.cache) does it in one round trip; any other cache
    with an add and an increment."""
    cache = caches["default"]
    if (incr_in_window := getattr(cache, "incr_in_window", None)) is not None:
        count: int | None = incr_in_window(key, timeout)
        return count
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1
