"""The OpenAPI document is generated from the routes' schemas: every public route is in it, with its answers,
and methods a route does not serve answer 405 in the route's dialect."""

import re

import pytest
from django.urls import get_resolver

from studio.api.urls import api

pytestmark = pytest.mark.django_db


def _public_routes() -> set[str]:
    """Every API route as the URL conf serves it, written the OpenAPI way (`{name}` for a parameter)."""
    routes = set()
    for pattern in get_resolver().url_patterns:
        for inner in getattr(pattern, "url_patterns", []):
            if getattr(pattern, "namespace", None) == "api" and inner.name not in (
                "api-root",
                "openapi-json",
                "openapi-view",
                "not-found",
            ):
                routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(inner.pattern)))
    return routes


def test_the_document_is_generated_and_covers_every_route(client):
    document = client.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    routes = _public_routes()
    assert len(routes) == 13
    assert routes == set(document["paths"])


def test_every_operation_documents_its_success_and_its_errors(client):
    document = client.get("/v1/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert statuses & {"200", "201", "202"}, (method, path)
            if path == "/v1/files/{token}":  # a signed link: no key
                assert "security" not in operation
            else:
                assert {"401", "429"} <= statuses, (method, path)
                assert operation["security"] == [{"ApiKeyAuth": []}], (method, path)


def test_the_request_schemas_are_typed(client):
    document = client.get("/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    native = schemas["TaskRequest"]["properties"]
    assert native["prompt"]["maxLength"] == 32000
    assert native["n"]["anyOf"][0] == {"maximum": 10, "minimum": 1, "type": "integer"}
    assert "16:9" in native["aspect_ratio"]["anyOf"][0]["enum"]
    edits = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"image", "image[]", "mask", "prompt", "model"} <= set(edits["schema"]["properties"])


def test_interactive_docs_are_served_from_our_own_static_files(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/ninja/" in html and "cdn" not in html.lower()


def test_the_generated_document_is_the_one_ninja_builds():
    assert api.get_openapi_schema()["info"]["title"] == "Studio API"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/v1/images/generations", "POST"),
        ("delete", "/v1/models", "GET"),
        ("put", "/api/v1/tasks", "POST"),
        ("post", "/api/v1/tasks/abc", "GET"),
        ("get", "/v1/generate/k/gpt-image-2-image-to-image", "POST"),
        ("patch", "/api/v1/generations/abc", "GET"),
        ("post", "/v1/files/token", "GET"),
    ],
)
def test_another_method_answers_405_in_openais_shape(client, method, path, allowed):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response["Allow"] == allowed
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed" and allowed in error["message"]


def test_another_method_answers_405_in_sjinns_shape(client):
    response = client.get("/api/un-api/create_tool_task")
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json() == {"success": False, "errorMsg": "Use POST for this endpoint.", "error_code": 405}


def test_a_missing_key_answers_401_in_each_dialects_shape(client):
    openai_answer = client.post("/api/v1/tasks", {"prompt": "x"}, content_type="application/json")
    assert openai_answer.status_code == 401 and openai_answer.json()["error"]["code"] == "invalid_api_key"
    assert openai_answer["WWW-Authenticate"].startswith("Bearer")
    sjinn_answer = client.post("/api/un-api/query_tool_task_status", {}, content_type="application/json")
    assert sjinn_answer.status_code == 401
    assert sjinn_answer.json()["success"] is False and sjinn_answer.json()["error_code"] == 401


@pytest.mark.parametrize("path", ["/v1/nothing", "/api/v1/nothing/at/all", "/v1/tasks/a/b"])
def test_an_unknown_api_path_answers_404_in_openais_shape(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
