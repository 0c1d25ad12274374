"""Logs (config.logs): one JSON line per request and per upstream attempt, the web request's id carried into
the Celery task and the upstream call, prompts and secrets redacted by setting."""

import json
import logging
import uuid

import pytest
import structlog
from django.conf import settings

from accounts.models import ApiKey
from config.logs import REDACTED, configure, redactor
from studio.engine.providers.base import TRACE_HEADER
from studio.models import Generation, Status
from tests.fake_upstream import FakeUpstream
from tests.helpers import attempt_lines, personal_membership
from tests.workers import FinishedTasks, WorkerProcess, new_queue, worker_in_process


def json_formatter() -> logging.Formatter:
    """The formatter production uses (LOG_FORMAT=json), built from the same LOGGING dict."""
    spec = dict(
        configure(log_format="json", log_prompts=settings.LOG_PROMPTS, level="INFO")["formatters"][
            "structured"
        ]
    )
    factory = spec.pop("()")
    return factory(**spec)


def rendered(caplog) -> list[dict]:
    formatter = json_formatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


@pytest.mark.django_db
def test_one_line_per_request_with_its_id_route_status_and_duration(client, caplog):
    caplog.set_level(logging.INFO)
    client.get("/healthz?probe=secret-value")
    client.get("/healthz")
    lines = [line for line in rendered(caplog) if line.get("logger", "").startswith("django_structlog")]
    assert [line["event"] for line in lines] == ["request_finished", "request_finished"]
    first, second = lines
    assert first["request"] == "GET /healthz"  # the query string never reaches a line
    assert first["route"] == "/healthz" and first["code"] == 200 and first["duration_ms"] >= 0
    assert uuid.UUID(first["request_id"]) and first["request_id"] != second["request_id"]
    assert "timestamp" in first and first["level"] == "info"


def test_prompts_and_secrets_are_redacted_unless_prompts_are_allowed():
    event = {
        "event": "something",
        "prompt": "a portrait of my neighbour",
        "authorization": "Bearer sk-live-123",
        "api_key": "sk-live-123",
        "webhook_secret": "whsec",
        "usage": {"input_tokens": 5, "output_tokens": 7, "password": "hunter2"},
        "request": "GET /inputs/abc.def.ghi/?sig=1",
        "route": "/inputs/<str:token>/",
    }
    kept = redactor(log_prompts=False)(None, "info", dict(event))
    assert kept["prompt"] == REDACTED
    assert kept["authorization"] == kept["api_key"] == kept["webhook_secret"] == REDACTED
    assert kept["usage"] == {"input_tokens": 5, "output_tokens": 7, "password": REDACTED}
    assert kept["request"] == "GET /inputs/<str:token>/"  # the signed token stays out
    allowed = redactor(log_prompts=True)(None, "info", dict(event))
    assert allowed["prompt"] == "a portrait of my neighbour" and allowed["api_key"] == REDACTED


def test_a_structlog_line_comes_out_as_json_with_the_redaction(caplog):
    caplog.set_level(logging.INFO)
    structlog.get_logger("studio.test").info("checked", prompt="a private prompt", token="t0k3n", size="1K")
    [line] = [line for line in rendered(caplog) if line["event"] == "checked"]
    assert line["prompt"] == REDACTED and line["token"] == REDACTED and line["size"] == "1K"
    assert line["logger"] == "studio.test"


@pytest.fixture(scope="module")
def engine_queue():
    """The worker starts before the test's log capture: Celery takes over the root logger's handlers."""
    queue = new_queue()
    with worker_in_process(queue, concurrency=2):
        yield queue


@pytest.fixture
def fake_upstream():
    with FakeUpstream() as upstream:
        yield upstream


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_the_request_id_reaches_the_task_the_attempt_line_and_the_upstream(
    engine_queue, client, alice, settings, fake_upstream, caplog
):
    caplog.set_level(logging.INFO)
    settings.OPENAI_API_KEY = "test"
    settings.OPENAI_BASE_URL = fake_upstream.base_url
    settings.STUDIO_PROVIDER = "openai"
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="logs")
    with FinishedTasks().listening() as finished:
        response = client.post(
            "/api/v1/tasks",
            {"prompt": "a lighthouse in fog", "size": "1024x1024", "quality": "low"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        assert response.status_code == 202, response.content
        generation = finished.wait(Generation.objects.get())
    assert generation.status == Status.SUCCEEDED, generation.error

    [request_line] = [
        line for line in rendered(caplog) if line.get("event") == "request_finished" and line["code"] == 202
    ]
    request_id = request_line["request_id"]
    [attempt] = attempt_lines(caplog, generation)
    assert attempt["request_id"] == request_id and attempt["outcome"] == "succeeded"
    assert attempt["upstream_request_id"].startswith("req_fake_")
    [upstream_request] = fake_upstream.requests
    assert upstream_request.headers[TRACE_HEADER.lower()] == request_id


@pytest.mark.pipeline
def test_a_worker_process_logs_json_lines_too(tmp_path):
    """Celery would format its own lines and the studio's dicts as text: the worker keeps config.logs'."""
    worker = WorkerProcess(new_queue(), tmp_path / "worker.log", LOG_FORMAT="json").start()
    try:
        worker.wait_for_log("ready.")
    finally:
        worker.kill()
    [ready] = [line for line in worker.log.splitlines() if "ready." in line]
    line = json.loads(ready)
    assert line["event"].endswith("ready.") and line["level"] == "info" and "timestamp" in line
