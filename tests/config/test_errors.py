"""What no view handled (config.errors): under the API, JSON in the dialect's shape, never an HTML page; a
database out of reach or out of connections, a 503 with Retry-After, on pages too."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken_sessions(client, alice, monkeypatch):
    """A logged-in client whose session store then fails as an exhausted pool does, in the middleware."""
    client.force_login(alice)
    client.raise_request_exception = False

    def load(self):
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(SessionStore, "load", load)
    return client


@pytest.fixture
def broken_middleware(client, monkeypatch):
    """A middleware every request passes (API calls load no session) failing as an exhausted pool does."""
    client.raise_request_exception = False

    def client_ip(request):
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr("accounts.audit.client_ip", client_ip)
    return client


@pytest.mark.parametrize("path", ["/api/v1/tasks/abc", "/v1/models"])
def test_an_api_route_failing_before_its_view_answers_a_json_503(broken_middleware, path):
    response = broken_middleware.get(path)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json" and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"


def test_the_sjinn_dialect_gets_its_own_shape(broken_middleware):
    response = broken_middleware.post("/api/un-api/query_tool_task_status", {}, "application/json")
    assert response.status_code == 503 and response.json()["success"] is False


def test_a_page_gets_a_503_that_tries_again_by_itself(broken_sessions):
    response = broken_sessions.get("/gallery/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    html = response.content.decode()
    assert "Busy for a moment" in html and '<meta http-equiv="refresh" content="5">' in html


def test_any_other_error_under_the_api_is_a_json_500(client, alice, monkeypatch):
    client.force_login(alice)
    client.raise_request_exception = False

    def fails(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(SessionStore, "load", fails)
    monkeypatch.setattr("accounts.audit.client_ip", fails)
    response = client.get("/api/v1/tasks/abc")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "internal_error"
    assert client.get("/gallery/").status_code == 500
