"""The cache fails open (config.cache): with Redis out of reach, the throttles that count in it let
requests through, with a warning in the log, instead of turning pages and API calls into errors."""

import logging

import pytest
from django.core.cache import cache

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
