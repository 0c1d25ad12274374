"""`GET /metrics`: the whole studio's figures in Prometheus's text format, behind a bearer token.

Any web node answers for every process of the studio: its own figures (HTTP latency by route, websockets,
credits moved here), the snapshots every other process (web, worker, beat) keeps in Redis
(studio.engine.metrics), each labelled `process="role:host:pid"`, and the database's state read at the
scrape (generations by status and provider account, the broker's queue depth, the oldest queued age).
Prometheus scrapes one address (the load balancer's); the Grafana dashboard is docs/grafana-dashboard.json.

Without `METRICS_TOKEN` the endpoint does not exist (404); with a wrong or missing token, 401.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.db.models import Count, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import sync_and_async_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from config.celery import app as celery_app
from studio.engine import metrics as engine_metrics
from studio.models import Generation, Status

logger = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HTTP_LATENCY = Histogram(
    "studio_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (the URL pattern), method and status class",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def _observe(request: HttpRequest, response: HttpResponse, started: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = f"/{match.route}" if match is not None and match.route else "unmatched"
    status = f"{response.status_code // 100}xx"
    seconds = time.perf_counter() - started
    HTTP_LATENCY.labels(route, request.method or "", status).observe(seconds)
    # For the request's log line, which django-structlog writes once this returns (config.logs).
    structlog.contextvars.bind_contextvars(route=route, duration_ms=round(seconds * 1000, 1))


@sync_and_async_middleware
def request_metrics(get_response):  # type: ignore[no-untyped-def]
    """Times every request by its URL pattern (never the raw path: ids would make a series each). Async as
    well as sync, so that it costs an ASGI request no hop to a thread."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            started = time.perf_counter()
            response = await get_response(request)
            _observe(request, response, started)
            return response

    else:

        def middleware(request: HttpRequest) -> HttpResponse:  # type: ignore[misc]
            started = time.perf_counter()
            response = get_response(request)
            _observe(request, response, started)
            return response

    return middleware


def database_families() -> Iterator[Metric]:
    """The studio's state, read at the scrape (the same on every node)."""
    generations = GaugeMetricFamily(
        "studio_generations", "Generations by status and provider account", labels=["status", "account"]
    )
    counted = Generation.objects.values_list("status", "upstream_account__name").annotate(n=Count("pk"))
    for status, account, count in counted.order_by():
        generations.add_metric([status, account or ""], count)
    yield generations

    oldest = Generation.objects.filter(status=Status.QUEUED).aggregate(at=Min("created_at"))["at"]
    yield GaugeMetricFamily(
        "studio_queue_oldest_seconds",
        "Age of the oldest generation waiting for a worker",
        value=(timezone.now() - oldest).total_seconds() if oldest else 0,
    )
    try:
        depth = _queue_depth()
    except Exception:
        logger.warning("the broker's queue depth could not be read", exc_info=True)
    else:
        yield GaugeMetricFamily("studio_queue_depth", "Tasks waiting in the broker's queue", value=depth)


def _queue_depth() -> int:
    with celery_app.connection_for_read() as broker:
        broker.ensure_connection(max_retries=1, timeout=2)
        channel: Any = broker.default_channel  # kombu's channels all declare queues
        try:
            _, depth, _ = channel.queue_declare(queue=settings.CELERY_TASK_DEFAULT_QUEUE, passive=True)
        except Exception as error:
            if str(getattr(error, "reply_code", "")) == "404":  # no such queue yet: nothing ever waited in it
                return 0
            raise
        return int(depth)


def _labelled(families: Iterable[Metric], process: str) -> Iterator[Metric]:
    for family in families:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [
            Sample(sample.name, {**sample.labels, "process": process}, sample.value, sample.timestamp)
            for sample in family.samples
        ]
        yield copy


class _Merged:
    """One collector for families gathered from many processes: one family per name, every sample kept."""

    def __init__(self, sources: Iterable[Iterable[Metric]]) -> None:
        self.families: dict[str, Metric] = {}
        for source in sources:
            for family in source:
                kept = self.families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type, family.unit)
                )
                kept.samples.extend(family.samples)

    def collect(self) -> Iterable[Metric]:
        return self.families.values()


def exposition() -> bytes:
    own = engine_metrics.process_name("web")
    sources: list[Iterable[Metric]] = [_labelled(REGISTRY.collect(), own)]
    try:
        for process, text in engine_metrics.read_snapshots(skip=own):
            sources.append(_labelled(text_string_to_metric_families(text), process))
    except Exception:
        logger.warning("the other processes' metrics could not be read from Redis", exc_info=True)
    sources.append(database_families())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(sources))
    return generate_latest(registry)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
