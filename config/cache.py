"""Django's Redis cache, failing open: while Redis is unreachable every call answers as a cache that holds
nothing (a miss; a write, `add` included, that seems to succeed and does not stick) instead of raising, with
a warning at most every ten seconds.

What the studio keeps in the cache can be lost: throttle counters (allauth's login and sign-up limits, the
API's per-key rate limit) start again from zero, which lets requests through while Redis is away rather than
turning every page and API call into an error. The database stays the truth for everything else.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError, TimeoutError

logger = logging.getLogger("studio.cache")

T = TypeVar("T")
UNREACHABLE = (ConnectionError, TimeoutError)
WARN_EVERY_SECONDS = 10.0


class FailOpenRedisCache(RedisCache):
    _last_warning = 0.0
    _lock = threading.Lock()

    def _or(self, fallback: T, call: Callable[[], T]) -> T:
        try:
            return call()
        except UNREACHABLE as error:
            self._warn(error)
            return fallback

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if now - FailOpenRedisCache._last_warning < WARN_EVERY_SECONDS:
                return
            FailOpenRedisCache._last_warning = now
        logger.warning("the cache (Redis) is unreachable, answering as an empty cache: %s", error)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        # True, as if added: callers that take a lock with add (allauth's throttles) go ahead.
        return self._or(True, lambda: super(FailOpenRedisCache, self).add(key, value, timeout, version))

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self._or(default, lambda: super(FailOpenRedisCache, self).get(key, default, version))

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> None:
        self._or(None, lambda: super(FailOpenRedisCache, self).set(key, value, timeout, version))

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        return self._or(False, lambda: super(FailOpenRedisCache, self).touch(key, timeout, version))

    def delete(self, key: Any, version: Any = None) -> bool:
        return self._or(False, lambda: super(FailOpenRedisCache, self).delete(key, version))

    def get_many(self, keys: Any, version: Any = None) -> dict[Any, Any]:
        return self._or({}, lambda: super(FailOpenRedisCache, self).get_many(keys, version))

    def has_key(self, key: Any, version: Any = None) -> bool:
        return self._or(False, lambda: super(FailOpenRedisCache, self).has_key(key, version))

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        # As Django's caches do for a key they do not hold.
        try:
            return super().incr(key, delta, version)
        except UNREACHABLE as error:
            self._warn(error)
            raise ValueError(f"Key '{key}' not found (the cache is unreachable)") from error

    def set_many(self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> list[Any]:
        return self._or(list(data), lambda: super(FailOpenRedisCache, self).set_many(data, timeout, version))

    def delete_many(self, keys: Any, version: Any = None) -> None:
        self._or(None, lambda: super(FailOpenRedisCache, self).delete_many(keys, version))
