"""Bearer-key authentication and the per-key rate limit."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import ApiKey, Membership
from studio.api.errors import ApiError, rate_limited, unauthorized


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    membership: Membership


def authenticate(request) -> Caller:
    """The key's owner and workspace, or an ApiError (401) for a missing, unknown or revoked key, and 429 past
    the key's rate limit."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise unauthorized()
    key = ApiKey.authenticate(secret.strip())
    if key is None:
        raise unauthorized("Invalid or revoked API key.")
    membership = (
        Membership.objects.select_related("workspace", "user")
        .filter(user=key.user, workspace=key.workspace)
        .first()
    )
    if membership is None or not key.user.is_active:
        raise unauthorized("This key's owner is no longer a member of its workspace.")
    _check_rate_limit(key)
    # Record use at most once a minute per key, not on every call.
    if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return Caller(key=key, membership=membership)


def _check_rate_limit(key: ApiKey) -> None:
    limit = key.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return
    window = int(time.time() // 60)
    counter = f"api-rate:{key.pk}:{window}"
    cache.add(counter, 0, timeout=120)
    try:
        count = cache.incr(counter)
    except ValueError:  # expired between add and incr
        cache.set(counter, 1, timeout=120)
        count = 1
    if count > limit:
        raise rate_limited(limit)


__all__ = ["ApiError", "Caller", "authenticate"]
