import base64
import json
import os

from studio.api import encoded


def test_images_are_spliced_in_as_base64_strings():
    first, second = os.urandom(3000), os.urandom(17)
    payload = {
        "created": 1,
        "data": [
            {"b64_json": encoded.Base64(first), "revised_prompt": 'a "quoted" prompt\nwith a new line'},
            {"b64_json": encoded.Base64(second), "revised_prompt": "ü and \u2603"},
        ],
        "usage": {"total_tokens": 3},
    }
    decoded = json.loads(encoded.dumps(payload))
    assert base64.b64decode(decoded["data"][0]["b64_json"]) == first
    assert base64.b64decode(decoded["data"][1]["b64_json"]) == second
    assert decoded["data"][0]["revised_prompt"] == 'a "quoted" prompt\nwith a new line'
    assert decoded["data"][1]["revised_prompt"] == "ü and \u2603"
    assert decoded["usage"] == {"total_tokens": 3}


def test_text_that_looks_like_a_placeholder_is_left_alone():
    # The placeholder's token is random per answer: a prompt can only guess at its shape.
    payload = {"prompt": "0123456789abcdef0123456789abcdef:0", "b64_json": encoded.Base64(b"image")}
    decoded = json.loads(encoded.dumps(payload))
    assert decoded == {
        "prompt": "0123456789abcdef0123456789abcdef:0",
        "b64_json": base64.b64encode(b"image").decode(),
    }


def test_without_images_it_is_plain_json():
    assert json.loads(encoded.dumps({"a": [1, "two"]})) == {"a": [1, "two"]}


def test_other_values_are_refused_as_json_refuses_them():
    try:
        encoded.dumps({"a": object()})
    except TypeError as error:
        assert "object is not JSON serializable" in str(error)
    else:
        raise AssertionError("an object was encoded")
