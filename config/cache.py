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
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError, TimeoutError

logger = logging.getLogger("studio.cache")

T = TypeVar("T")
UNREACHABLE = (ConnectionError, TimeoutError)
WARN_EVERY_SECONDS = 10.0


class SharedPoolClient(RedisCacheClient):
    """Django's Redis client with one connection pool per server for the whole process.

    Django makes a cache object per thread and per request context (`caches` is context-local), and each
    made its own pool: under ASGI every request, on a thread of its own, opened a new connection to Redis
    (a connect and a health check per request, a fifth of the rate limiter's time).
    redis-py's pools are thread-safe and notice a fork, so one per server serves every thread.
    """

    _shared: dict[str, Any] = {}
    _shared_lock = threading.Lock()

    # Django's client keeps these attributes private; its type stubs do not declare them.
    _servers: list[str]
    _pools: dict[int, Any]
    _pool_class: Any
    _pool_options: dict[str, Any]

    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        if index not in self._pools:
            key = f"{self._servers[index]} {sorted(self._pool_options.items(), key=str)!r}"
            with self._shared_lock:
                if key not in self._shared:
                    self._shared[key] = self._pool_class.from_url(self._servers[index], **self._pool_options)
                self._pools[index] = self._shared[key]
        return self._pools[index]

    def incr_in_window(self, key: str, timeout: int) -> int:
        """Add one to a counter that expires `timeout` seconds after it was created: one round trip."""
        client = self.get_client(key, write=True)
        pipeline = client.pipeline(transaction=False)
        pipeline.set(key, 0, ex=timeout, nx=True)
        pipeline.incr(key)
        _, count = pipeline.execute()
        return int(count)


class FailOpenRedisCache(RedisCache):
    _last_warning = 0.0
    _lock = threading.Lock()

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolClient

    def incr_in_window(self, key: Any, timeout: int, version: Any = None) -> int | None:
        """A counter for a time window (a rate limit), or None while Redis is unreachable."""
        key = self.make_and_validate_key(key, version=version)
        client: SharedPoolClient = self._cache  # type: ignore[attr-defined]
        return self._or(None, lambda: client.incr_in_window(key, timeout))

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
