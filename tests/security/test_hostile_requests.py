"""Hostile requests over every API route and the gallery's filters: each is refused with a clear 4xx in the
route's own error shape (sjinn answers its validation errors with HTTP 200 and `success: false`, as its
document says), none with a 5xx, none charged, none creating a generation, none leaking another workspace.

The table counts its cases: at least 150 requests (see test_the_suite_is_large_enough)."""

import base64
import json

import pytest

from accounts.models import ApiKey
from studio.models import Generation
from tests.conftest import png_bytes
from tests.helpers import finished_generation, personal_membership

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

DATA_URI = "data:image/png;base64," + base64.b64encode(png_bytes((64, 64))).decode()

# Each JSON route: its dialect, and a body it would accept, into which the cases below put their poison.
ROUTES = {
    "/v1/images/generations": ("openai", lambda prompt: {"prompt": prompt}),
    "/api/v1/tasks": ("openai", lambda prompt: {"prompt": prompt}),
    "/api/un-api/create_tool_task": (
        "sjinn",
        lambda prompt: {"tool_type": "gpt-image-2-api", "input": {"prompt": prompt}},
    ),
    "/v1/generate/k/gpt-image-2-image-to-image": (
        "openai",
        lambda prompt: {"input_urls": [DATA_URI], "prompt": prompt},
    ),
    "/api/v1/generations": ("openai", lambda prompt: {"type": "image", "input": {"prompt": prompt}}),
}

# Prompts no dialect may accept: raw JSON text, so that what Python's json module cannot write (a lone
# surrogate) is sent as a client would.
BAD_PROMPTS = {
    "a NUL byte": '"a \\u0000 b"',
    "a lone surrogate": '"a \\ud800 b"',
    "a list": '["a", "b"]',
    "an object": '{"text": "a"}',
    "a number": "42",
    "a boolean": "true",
    "null": "null",
    "too long": json.dumps("x" * 40_001),
}


def _raw_body(route: str, prompt_json: str) -> bytes:
    marker = "PROMPT-MARKER"
    return json.dumps(ROUTES[route][1](marker)).replace(f'"{marker}"', prompt_json).encode()


# Route-specific poisons: (route, body as JSON text, why).
SPECIFIC = [
    ("/v1/images/generations", '{"prompt": "x", "n": true}', "n is a boolean"),
    ("/v1/images/generations", '{"prompt": "x", "n": 1e400}', "n is infinite"),
    ("/v1/images/generations", '{"prompt": "x", "n": "many"}', "n is a word"),
    ("/v1/images/generations", '{"prompt": "x", "n": 11}', "n is too many"),
    ("/v1/images/generations", '{"prompt": "x", "n": -1}', "n is negative"),
    ("/v1/images/generations", '{"prompt": "x", "n": 2.5}', "n is a fraction"),
    ("/v1/images/generations", '{"prompt": "x", "size": "1000x1000"}', "size off the grid"),
    ("/v1/images/generations", '{"prompt": "x", "size": "99999999x1"}', "size absurd"),
    ("/v1/images/generations", '{"prompt": "x", "size": ["1024x1024"]}', "size a list"),
    ("/v1/images/generations", '{"prompt": "x", "quality": "ultra"}', "quality unknown"),
    ("/v1/images/generations", '{"prompt": "x", "output_format": "gif"}', "format unknown"),
    ("/v1/images/generations", '{"prompt": "x", "output_compression": 1e400}', "compression infinite"),
    ("/v1/images/generations", '{"prompt": "x", "output_compression": 101}', "compression too high"),
    ("/v1/images/generations", '{"prompt": "x", "partial_images": 4}', "too many partials"),
    ("/v1/images/generations", '{"prompt": "x", "response_format": "xml"}', "response format unknown"),
    ("/v1/images/generations", '{"prompt": "x", "model": "dall-e-9"}', "model unknown"),
    ("/v1/images/generations", '{"prompt": "x", "model": 7}', "model a number"),
    ("/v1/images/generations", '{"prompt": "x", "stream": "maybe"}', "stream not a boolean"),
    ("/v1/images/generations", '{"prompt": "x", "background": 5}', "background a number"),
    ("/v1/images/generations", '{"prompt": "x", "moderation": "none"}', "moderation unknown"),
    ("/v1/images/generations", '{"prompt": ""}', "empty prompt"),
    ("/v1/images/generations", '{"prompt": "   "}', "blank prompt"),
    ("/api/v1/tasks", '{"prompt": "x", "n": true}', "n is a boolean"),
    ("/api/v1/tasks", '{"prompt": "x", "n": 1e400}', "n is infinite"),
    ("/api/v1/tasks", '{"prompt": "x", "aspect_ratio": "7:5"}', "ratio unknown"),
    ("/api/v1/tasks", '{"prompt": "x", "resolution": "8K"}', "resolution unknown"),
    ("/api/v1/tasks", '{"prompt": "x", "size": "4096x4096"}', "size over the edge"),
    ("/api/v1/tasks", '{"prompt": "x", "hack": 1}', "an unknown field"),
    ("/api/v1/tasks", '{"prompt": "x", "images": "http://a.example/x.png"}', "images not a list"),
    ("/api/v1/tasks", '{"prompt": "x", "images": [5]}', "an image that is a number"),
    ("/api/v1/tasks", '{"prompt": "x", "images": [""]}', "an empty image reference"),
    ("/api/v1/tasks", f'{{"prompt": "x", "images": {json.dumps([DATA_URI] * 17)}}}', "17 images"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://127.0.0.1/x.png"]}', "a loopback image"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://169.254.169.254/latest"]}', "metadata address"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://[64:ff9b::7f00:1]/x.png"]}', "a NAT64 image"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://[2002:7f00:1::]/x.png"]}', "a 6to4 image"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://[::7f00:1]/x.png"]}', "IPv4-compatible"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://2130706433/x.png"]}', "decimal IPv4"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://0x7f.0.0.1/x.png"]}', "hex IPv4"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["file:///etc/passwd"]}', "a file URL"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["gopher://a.example/"]}', "a gopher URL"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["asset://not-an-id"]}', "a bad asset"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["data:image/png;base64,!!!"]}', "a broken data URI"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["data:image/png;base64,aGVsbG8="]}', "data URI, no image"),
    ("/api/v1/tasks", f'{{"prompt": "x", "images": ["http://a.example/{"x" * 2001}"]}}', "URL too long"),
    ("/api/v1/tasks", '{"prompt": "x", "images": ["http://a.example/x.png\\r\\nX-Evil: 1"]}', "CR/LF URL"),
    ("/api/v1/tasks", '{"prompt": "x", "mask": 5}', "a mask that is a number"),
    ("/api/v1/tasks", '{"prompt": "x", "mask": ["a"]}', "a mask that is a list"),
    ("/api/v1/tasks", f'{{"prompt": "x", "mask": "{DATA_URI}"}}', "a mask without a source"),
    ("/api/v1/tasks", '{"prompt": "x", "callback_url": "http://127.0.0.1/hook"}', "a loopback callback"),
    ("/api/v1/tasks", '{"prompt": "x", "callback_url": "http://[64:ff9b::a00:1]/"}', "a NAT64 callback"),
    ("/api/v1/tasks", '{"prompt": "x", "callback_url": "http://10.0.0.1/hook"}', "a private callback"),
    ("/api/v1/tasks", '{"prompt": "x", "callback_url": "javascript:alert(1)"}', "a script callback"),
    ("/api/v1/tasks", '{"prompt": "x", "callback_url": 7}', "a callback that is a number"),
    ("/api/un-api/create_tool_task", '{"tool_type": "other", "input": {"prompt": "x"}}', "wrong tool"),
    ("/api/un-api/create_tool_task", '{"tool_type": "gpt-image-2-api"}', "no input"),
    ("/api/un-api/create_tool_task", '{"tool_type": "gpt-image-2-api", "input": []}', "input a list"),
    ("/api/un-api/create_tool_task", '{"tool_type": "gpt-image-2-api", "input": {}}', "no prompt"),
    (
        "/api/un-api/create_tool_task",
        '{"tool_type": "gpt-image-2-api", "input": {"prompt": "x", "image_list": "a"}}',
        "image_list a string",
    ),
    (
        "/api/un-api/create_tool_task",
        '{"tool_type": "gpt-image-2-api", "input": {"prompt": "x", "image_list": ["http://10.1.1.1/"]}}',
        "a private image",
    ),
    ("/api/un-api/create_tool_task", '{"tool_type": 5, "input": {"prompt": "x"}}', "tool a number"),
    ("/v1/generate/k/gpt-image-2-image-to-image", '{"prompt": "x"}', "no input_urls"),
    ("/v1/generate/k/gpt-image-2-image-to-image", '{"input_urls": [], "prompt": "x"}', "empty input_urls"),
    (
        "/v1/generate/k/gpt-image-2-image-to-image",
        '{"input_urls": ["http://[::ffff:127.0.0.1]/x.png"], "prompt": "x"}',
        "a mapped loopback image",
    ),
    (
        "/v1/generate/k/gpt-image-2-image-to-image",
        f'{{"input_urls": ["{DATA_URI}"], "prompt": "x", "nsfw_checker": "yes"}}',
        "nsfw_checker a word",
    ),
    (
        "/v1/generate/k/gpt-image-2-image-to-image",
        f'{{"input_urls": ["{DATA_URI}"], "prompt": "x", "aspect_ratio": "7:5"}}',
        "ratio unknown",
    ),
    (
        "/v1/generate/k/gpt-image-2-image-to-image",
        f'{{"input_urls": ["{DATA_URI}"], "prompt": "x", "resolution": "8K"}}',
        "resolution unknown",
    ),
    (
        "/v1/generate/k/gpt-image-2-image-to-image",
        f'{{"input_urls": ["{DATA_URI}"], "prompt": {json.dumps("x" * 20_001)}}}',
        "prompt over its 20,000",
    ),
    ("/api/v1/generations", '{"type": "video", "input": {"prompt": "x"}}', "type video"),
    ("/api/v1/generations", '{"model": "other", "input": {"prompt": "x"}}', "model other"),
    ("/api/v1/generations", '{"type": "image"}', "no input"),
    ("/api/v1/generations", '{"input": {"prompt": "x", "aspectRatio": "7:5"}}', "ratio unknown"),
    ("/api/v1/generations", '{"input": {"prompt": "x", "quality": "ultra"}}', "quality unknown"),
    ("/api/v1/generations", '{"input": {"prompt": "x", "imageSize": "8K"}}', "size unknown"),
    ("/api/v1/generations", f'{{"input": {{"prompt": "x", "maskImage": "{DATA_URI}"}}}}', "mask, no source"),
    ("/api/v1/generations", '{"input": {"prompt": "x", "referenceAssetUris": "a"}}', "references a string"),
    ("/api/v1/generations", '{"input": {"prompt": "x", "sourceImage": "http://192.168.0.1/"}}', "private"),
    ("/api/v1/generations", '{"input": {"prompt": "x"}, "callbackUrl": "http://127.0.0.1/"}', "callback"),
]

# Bodies that are not what a JSON route takes, for every JSON route: (body, content type, why).
BAD_BODIES = [
    (b'{"prompt": "x"', "application/json", "truncated JSON"),
    (b"prompt=x", "application/x-www-form-urlencoded", "a form"),
    (b'{"prompt": "x"}', "text/plain", "JSON sent as text"),
    (b"[1, 2, 3]", "application/json", "an array"),
    (b"null", "application/json", "null"),
    (b'"prompt"', "application/json", "a string"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested 100,000 deep"),
    (b"\xff\xfe\x00", "application/json", "not UTF-8"),
    (b"", "application/json", "empty"),
]

AUTH_HEADERS = {
    "no header": None,
    "empty bearer": "Bearer ",
    "basic auth": "Basic YWxpY2U6c2VjcmV0",
    "an unknown key": "Bearer sk-studio-unknown",
    "a header with spaces": "Bearer   ",
}

ALL_ROUTES = [
    ("POST", "/v1/images/generations", "openai"),
    ("POST", "/v1/images/edits", "openai"),
    ("GET", "/v1/models", "openai"),
    ("POST", "/api/v1/tasks", "openai"),
    ("GET", "/api/v1/tasks/00000000-0000-0000-0000-000000000000", "openai"),
    ("POST", "/api/un-api/create_tool_task", "sjinn"),
    ("POST", "/api/un-api/query_tool_task_status", "sjinn"),
    ("POST", "/v1/generate/k/gpt-image-2-image-to-image", "openai"),
    ("GET", "/v1/tasks/00000000-0000-0000-0000-000000000000", "openai"),
    ("POST", "/api/v1/generations", "openai"),
    ("GET", "/api/v1/generations/00000000-0000-0000-0000-000000000000", "openai"),
]


@pytest.fixture
def key(alice):
    issued = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="hostile")
    # Hundreds of requests a minute: the rate limit is tested elsewhere (tests/studio/api).
    ApiKey.objects.filter(pk=issued[0].pk).update(rate_limit_per_minute=1_000_000)
    return issued


@pytest.fixture
def call(client, key):
    def send(method: str, path: str, body: bytes = b"", *, content_type="application/json", auth="key"):
        headers = {}
        if auth == "key":
            headers["HTTP_AUTHORIZATION"] = f"Bearer {key[1]}"
        elif auth is not None:
            headers["HTTP_AUTHORIZATION"] = auth
        return client.generic(method, path, body, content_type=content_type, **headers)

    return send


def assert_refused(response, dialect: str) -> dict:
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    assert not response.cookies, "the API never sets cookies"
    body = response.json()
    if dialect == "sjinn":
        assert body["success"] is False and 400 <= body["error_code"] < 500, body
        assert body["errorMsg"]
        assert response.status_code in (200, 401, 402, 405, 413, 415, 429)
    else:
        assert 400 <= response.status_code < 500, body
        assert body["error"]["message"] and body["error"]["type"], body
    return body


@pytest.fixture(autouse=True)
def nothing_charged(fast_password_hashing, alice):
    yield
    alice.refresh_from_db()
    assert alice.credits == 1000
    assert not Generation.objects.filter(author=alice).exists()


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("poison", list(BAD_PROMPTS))
def test_a_prompt_that_is_not_text_is_refused_by_every_dialect(call, route, poison):
    response = call("POST", route, _raw_body(route, BAD_PROMPTS[poison]))
    assert_refused(response, ROUTES[route][0])


@pytest.mark.parametrize(("route", "body", "why"), SPECIFIC, ids=[f"{r} {w}" for r, _, w in SPECIFIC])
def test_a_field_out_of_its_documented_range_is_refused(call, route, body, why):
    response = call("POST", route, body.encode())
    refused = assert_refused(response, ROUTES[route][0])
    if ROUTES[route][0] == "openai":
        assert refused["error"]["param"] or refused["error"]["code"], refused


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize(("body", "content_type", "why"), BAD_BODIES, ids=[why for _, _, why in BAD_BODIES])
def test_a_body_that_is_not_a_json_object_is_refused(call, route, body, content_type, why):
    response = call("POST", route, body, content_type=content_type)
    assert_refused(response, ROUTES[route][0])
    if content_type != "application/json":
        assert response.status_code == 415


@pytest.mark.parametrize(
    ("method", "path", "dialect"), ALL_ROUTES, ids=[f"{m} {p}" for m, p, _ in ALL_ROUTES]
)
@pytest.mark.parametrize("auth", list(AUTH_HEADERS))
def test_every_route_refuses_a_missing_or_wrong_key(call, method, path, dialect, auth):
    response = call(method, path, b'{"prompt": "x"}', auth=AUTH_HEADERS[auth])
    assert_refused(response, dialect)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "dialect"), ALL_ROUTES, ids=[f"{m} {p}" for m, p, _ in ALL_ROUTES]
)
def test_every_route_refuses_a_revoked_key(call, key, method, path, dialect):
    key[0].revoke()
    response = call(method, path, b'{"prompt": "x"}')
    assert_refused(response, dialect)
    assert response.status_code == 401


@pytest.fixture
def strangers_work(bob):
    generation, image = finished_generation(personal_membership(bob), prompt="bob's secret lighthouse")
    return generation, image


TASK_IDS = ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "' OR 1=1 --", "../../etc/passwd", "%00"]


@pytest.mark.parametrize("path", ["/api/v1/tasks/{}", "/v1/tasks/{}", "/api/v1/generations/{}"])
@pytest.mark.parametrize("task_id", [*TASK_IDS, "STRANGER"])
def test_a_task_that_is_not_the_keys_is_not_found(call, strangers_work, path, task_id):
    task_id = str(strangers_work[0].pk) if task_id == "STRANGER" else task_id
    response = call("GET", path.format(task_id))
    body = assert_refused(response, "openai")
    assert response.status_code == 404 and "lighthouse" not in json.dumps(body)


@pytest.mark.parametrize("task_id", [*TASK_IDS, "STRANGER", 5, None, ["a"]])
def test_a_sjinn_query_for_a_task_that_is_not_the_keys_is_refused(call, strangers_work, task_id):
    task_id = str(strangers_work[0].pk) if task_id == "STRANGER" else task_id
    response = call("POST", "/api/un-api/query_tool_task_status", json.dumps({"task_id": task_id}).encode())
    body = assert_refused(response, "sjinn")
    assert "lighthouse" not in json.dumps(body)


def test_a_strangers_asset_is_not_found_and_not_charged(call, strangers_work):
    body = json.dumps({"prompt": "steal", "images": [f"asset://{strangers_work[1].pk}"]}).encode()
    response = call("POST", "/api/v1/tasks", body)
    assert_refused(response, "openai")
    assert response.status_code == 404


@pytest.mark.parametrize("token", ["forged", "a" * 500, "..%2F..%2Fsecret", "%00"])
def test_a_forged_file_link_is_not_found(call, token):
    response = call("GET", f"/v1/files/{token}", auth=None)
    assert_refused(response, "openai")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("fields", "files", "why"),
    [
        ({"prompt": "x"}, {}, "no image"),
        ({"prompt": "x"}, {"image": ("a.png", b"not an image", "image/png")}, "not an image"),
        ({"prompt": "x"}, {"image": ("a.gif", b"GIF89a" + b"\x00" * 20, "image/gif")}, "a GIF"),
        ({"prompt": "x", "n": "true"}, {"image": ("a.png", png_bytes(), "image/png")}, "n a word"),
        ({"prompt": "x", "n": "1e400"}, {"image": ("a.png", png_bytes(), "image/png")}, "n infinite"),
        ({"prompt": "x\x00"}, {"image": ("a.png", png_bytes(), "image/png")}, "a NUL in the prompt"),
        (
            {"prompt": "x"},
            {
                "image": ("a.png", png_bytes((64, 64)), "image/png"),
                "mask": ("m.png", png_bytes((32, 32)), "image/png"),
            },
            "a mask of another size",
        ),
        (
            {"prompt": "x"},
            {"image": ("a.png", png_bytes(), "image/png"), "mask": ("m.png", b"1234", "image/png")},
            "a mask that is not an image",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_an_edit_with_bad_parts_is_refused(client, key, fields, files, why):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = dict(fields)
    for name, (filename, content, content_type) in files.items():
        data[name] = SimpleUploadedFile(filename, content, content_type=content_type)
    response = client.post("/v1/images/edits", data, HTTP_AUTHORIZATION=f"Bearer {key[1]}")
    assert_refused(response, "openai")


def test_an_edit_with_a_broken_multipart_body_is_refused(call):
    response = call("POST", "/v1/images/edits", b"--x--\r\n", content_type="multipart/form-data")
    assert_refused(response, "openai")


@pytest.mark.parametrize(
    "query",
    [
        "date_to=9999-12-31",
        "date_from=9999-12-31",
        "date_from=0001-01-01&date_to=0001-01-01",
        "date_to=2026-13-45",
        "cursor=garbage",
        "cursor=9" * 50,
        "project=abc",
        "project=-1",
        "author=999999999999999999999",
        "status=everything",
        "q=" + "a%00b",
        "q=" + "x" * 5000,
    ],
)
def test_the_gallerys_filters_never_fail(client, alice, query):
    client.force_login(alice)
    response = client.get(f"/gallery/?{query}")
    assert response.status_code in (200, 400), response.status_code


def test_the_suite_is_large_enough():
    cases = (
        len(ROUTES) * len(BAD_PROMPTS)
        + len(SPECIFIC)
        + len(ROUTES) * len(BAD_BODIES)
        + len(ALL_ROUTES) * (len(AUTH_HEADERS) + 1)
        + 3 * (len(TASK_IDS) + 1)
        + len(TASK_IDS)
        + 3
        + 1
        + 4
        + 8
        + 1
        + 12
    )
    assert cases >= 150, cases
