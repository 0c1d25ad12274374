"""GET /metrics: behind its token, one valid exposition for the whole studio (this process, the snapshots the
other processes keep in Redis, the database's state), HTTP latency by route, credits moved."""

import uuid

import pytest
import redis
from django.conf import settings
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from accounts import ledger
from studio.engine import metrics as engine_metrics
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation
from tests.helpers import finished_generation, personal_membership

TOKEN = "metrics-test-token-0123456789"


@pytest.fixture(autouse=True)
def token(settings):
    settings.METRICS_TOKEN = TOKEN


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("studio.engine.queue.run_generation", lambda generation_id: None)


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(response.content.decode()))
    names = [family.name for family in families]
    assert len(names) == len(set(names)), "a family twice: Prometheus would refuse the scrape"
    return {family.name: family for family in families}


def value(families: dict, family: str, sample: str | None = None, **labels) -> float | None:
    for item in families[family].samples:
        if (sample is None or item.name == sample) and all(
            item.labels.get(k) == v for k, v in labels.items()
        ):
            return item.value
    return None


def test_without_a_token_configured_there_is_no_endpoint(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN + "x"])
def test_a_missing_or_wrong_token_is_refused(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert b"studio_" not in response.content


@pytest.mark.django_db
def test_generations_by_status_and_the_queue_come_from_the_database(client, alice):
    membership = personal_membership(alice)
    finished_generation(membership, prompt="done")
    generation_submit(membership=membership, spec=GenerationSpec.build(prompt="waiting"))
    families = scrape(client)
    assert value(families, "studio_generations", status="succeeded", account="") == 1
    assert value(families, "studio_generations", status="queued", account="") == 1
    assert Generation.objects.count() == 2
    assert value(families, "studio_queue_oldest_seconds") >= 0
    assert value(families, "studio_queue_depth") >= 0  # read from the broker itself


@pytest.mark.django_db(transaction=True)
def test_credits_spent_and_refunded_are_counted_once_committed(client, alice):
    own = engine_metrics.process_name("web")
    before = scrape(client)
    spent_before = value(before, "studio_credits", kind="spend", process=own) or 0
    refunded_before = value(before, "studio_credits", kind="refund", process=own) or 0
    generation = generation_submit(
        membership=personal_membership(alice), spec=GenerationSpec.build(prompt="x")
    )
    ledger.refund(user_id=alice.pk, amount=100, reference=f"generation:{generation.pk}", reason="Test")
    ledger.refund(
        user_id=alice.pk, amount=100, reference=f"generation:{generation.pk}", reason="Twice"
    )  # no-op
    after = scrape(client)
    assert value(after, "studio_credits", kind="spend", process=own) == spent_before + 100
    assert value(after, "studio_credits", kind="refund", process=own) == refunded_before + 100


@pytest.mark.django_db
def test_http_latency_is_by_route_not_by_path(client, alice):
    client.force_login(alice)
    client.get("/healthz")
    missing = f"/images/{uuid.uuid4()}/"
    assert client.get(missing).status_code == 404
    families = scrape(client)
    count = "studio_http_request_duration_seconds_count"
    assert value(families, "studio_http_request_duration_seconds", count, route="/healthz", status="2xx") >= 1
    assert (
        value(families, "studio_http_request_duration_seconds", count, route="/images/<uuid:image_id>/") >= 1
    )
    routes = {s.labels.get("route") for s in families["studio_http_request_duration_seconds"].samples}
    assert missing not in routes


@pytest.mark.django_db
def test_other_processes_snapshots_are_merged_with_their_process_label(client):
    """A worker elsewhere writes its figures to Redis; the scrape shows them beside this process's, in one
    family, and stops showing them once the snapshot expires."""
    registry = CollectorRegistry()
    Gauge(
        "studio_generations_in_flight", "Generations this worker process is running", registry=registry
    ).set(7)
    process = f"worker:elsewhere-{uuid.uuid4().hex[:6]}:4242"
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    key = engine_metrics.SNAPSHOT_PREFIX + process
    client_redis.set(key, generate_latest(registry), ex=60)
    try:
        families = scrape(client)
        assert value(families, "studio_generations_in_flight", process=process) == 7
        own = engine_metrics.process_name("web")
        assert value(families, "studio_generations_in_flight", process=own) is not None
    finally:
        client_redis.delete(key)
    assert value(scrape(client), "studio_generations_in_flight", process=process) is None


def test_a_process_publishes_its_snapshot_with_an_expiry():
    engine_metrics.publish_snapshot("worker")
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    key = engine_metrics.SNAPSHOT_PREFIX + engine_metrics.process_name("worker")
    try:
        assert 0 < client_redis.ttl(key) <= engine_metrics.SNAPSHOT_TTL_SECONDS
        names = {family.name for family in text_string_to_metric_families(client_redis.get(key).decode())}
        assert {"studio_generations_in_flight", "studio_upstream_latency_seconds", "studio_credits"} <= names
    finally:
        client_redis.delete(key)


def test_the_grafana_dashboard_charts_only_series_the_studio_exports(client, db):
    """Every metric a panel queries is one /metrics serves (a renamed metric would leave a panel empty)."""
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(settings.BASE_DIR) / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(studio_[a-z_]+)", target["expr"])
    }
    # A family with labels has no sample until something is counted: compare the families' names.
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in queried}
    assert families and families <= set(scrape(client)), families - set(scrape(client))
