"""Liveness and readiness for load balancers and orchestrators.

Ready means able to serve: the database answers. Redis (cache, channel layer) and the broker are checked
and named when they fail, but a node without them still serves reads and takes submissions (they are sent
once the broker is back), so it stays in the load balancer as "degraded" (200) rather than leaving every
node out at once (503 is for a database out of reach).
"""

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

CHECK_TIMEOUT_SECONDS = 2


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    with celery_app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)


CHECKS = {"database": _check_database, "redis": _check_redis, "broker": _check_broker}
REQUIRED = {"database"}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:
            results[name] = f"error: {type(error).__name__}: {error}"[:300]
    failing = [name for name, result in results.items() if result != "ok"]
    unavailable = any(name in REQUIRED for name in failing)
    status = "unavailable" if unavailable else "degraded" if failing else "ok"
    body: dict[str, object] = {"status": status, "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if unavailable else 200)
