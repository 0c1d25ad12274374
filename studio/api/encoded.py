"""JSON with images in it, without passing megabytes of base64 through the JSON encoder.

An answer carrying a 2 MB image is ~2.8 MB of base64 in one JSON string. `json.dumps` scans every character
of it for escaping and `JsonResponse` copies it again (7.7 ms a 1024x1024 PNG; benches/overhead.py). Base64
needs no escaping, so the answer is encoded with a placeholder per image and the base64 bytes are put in its
place. The placeholder holds a random token made per answer, so no text in the answer (a prompt) can match it.
"""

import base64
import json
import secrets
from typing import Any


class Base64:
    """A value to be sent as the base64 of these bytes, in a JSON string."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def dumps(payload: Any) -> bytes:
    """`payload` as JSON bytes, each `Base64` in it written as a base64 string."""
    token = secrets.token_hex(16)
    images: list[bytes] = []

    def default(value: Any) -> str:
        if isinstance(value, Base64):
            images.append(value.data)
            return f"{token}:{len(images) - 1}"
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    text = json.dumps(payload, default=default).encode()
    if not images:
        return text
    parts = text.split(token.encode() + b":")
    out = [parts[0]]
    for part in parts[1:]:
        number, _, rest = part.partition(b'"')
        out += [base64.b64encode(images[int(number)]), b'"', rest]
    return b"".join(out)
