"""The cache fails open (config.cache): with Redis out of reach, the throttles that count in it let
requests through, with a warning in the log, instead of turning pages and API calls into errors."""

import logging
import threading
import uuid

import pytest
from django.core.cache import cache, caches

from accounts.models import ApiKey
from tests.helpers import personal_membership

pytestmark = pytest.mark.django_db

UNREACHABLE = {
    "default": {
        "BACKEND": "config.cache.FailOpenRedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "KEY_PREFIX": "studio",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


@pytest.fixture
def redis_gone(settings):
    settings.CACHES = UNREACHABLE


def test_an_unreachable_cache_answers_as_an_empty_one(redis_gone, caplog):
    with caplog.at_level(logging.WARNING, logger="studio.cache"):
        assert cache.get("anything", "default") == "default"
        assert cache.add("counter", 0) is True  # as if it stuck: a lock taken with add goes ahead
        cache.set("key", "value")
        assert cache.get_many(["a", "b"]) == {}
        with pytest.raises(ValueError):
            cache.incr("counter")
        assert cache.incr_in_window("window", timeout=60) is None  # nothing counted: the limit lets it by
    assert "the cache (Redis) is unreachable" in caplog.text


def test_login_and_the_login_page_work_without_redis(client, redis_gone, make_user):
    make_user("wren", password="a long enough secret")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"login": "wren", "password": "a long enough secret"})
    assert response.status_code == 302


def test_the_api_rate_limit_fails_open_without_redis(client, redis_gone, alice, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="open")
    answers = [
        client.get("/api/v1/tasks/no-such-task", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code
        for _ in range(4)
    ]
    assert answers == [404] * 4  # past the limit of 2, yet nothing is counted while Redis is away


def test_pages_render_from_the_database_without_redis(client, redis_gone, alice):
    client.force_login(alice)
    workspace = personal_membership(alice).workspace
    for page in ("/", "/gallery/", f"/workspaces/{workspace.slug}/projects/", "/workspaces/"):
        assert client.get(page).status_code == 200, page


def test_a_window_counter_counts_in_one_place_and_expires():
    key = f"window-{uuid.uuid4().hex}"
    assert [cache.incr_in_window(key, timeout=30) for _ in range(3)] == [1, 2, 3]
    redis = cache._cache.get_client(write=True)
    assert 0 < redis.ttl(cache.make_key(key)) <= 30  # set as the window opened, not pushed back by a count
    assert cache.get(key) == 3  # the same counter Django's cache API reads


def test_every_thread_uses_the_one_connection_pool():
    """Django makes a cache object per thread (and per request under ASGI); they share one pool, so a request
    does not open a connection to Redis of its own."""
    pools = []

    def use_the_cache() -> None:
        own = caches["default"]
        own.get("anything")
        pools.append(own._cache._get_connection_pool(write=True))

    threads = [threading.Thread(target=use_the_cache) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pools) == 20
    assert len({id(pool) for pool in pools}) == 1
    assert len(pools[0]._available_connections) + len(pools[0]._in_use_connections) <= 20


def test_the_rate_limit_counts_in_any_other_cache_too(settings):
    from studio.api.auth import count_in_window

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [count_in_window("window", timeout=60) for _ in range(3)] == [1, 2, 3]
