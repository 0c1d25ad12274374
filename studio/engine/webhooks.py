"""Tell an API client that its task finished: POST the task's final status to its callback URL, signed.

Headers of every delivery:
    X-Studio-Event: task.finished
    X-Studio-Delivery: <delivery id>           unique per attempt
    X-Studio-Timestamp: <unix seconds>
    X-Studio-Signature: sha256=<hex>           HMAC-SHA256 of "<timestamp>.<body>", keyed by the key's
                                               webhook secret (shown on the API keys page)

A receiver verifies the signature, refuses old timestamps, and deduplicates by the task id in the body (a
delivery may be retried after a timeout the receiver did in fact process).
"""

import hashlib
import hmac
import json
import time

import httpx
from django.conf import settings

from studio.engine.fetch import FetchRefused, check_url


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_seconds: int = 300) -> bool:
    """For receivers (and tests): is this a fresh delivery signed with `secret`?"""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - stamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature or "")


def post(url: str, payload: dict, *, secret: str, delivery_id: str) -> tuple[int | None, str]:
    """One delivery: (status code, error). Private addresses are refused unless settings allow them."""
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        try:
            check_url(url)
        except FetchRefused as error:
            return None, str(error)[:300]
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Studio webhooks",
        "X-Studio-Event": "task.finished",
        "X-Studio-Delivery": delivery_id,
        "X-Studio-Timestamp": str(timestamp),
        "X-Studio-Signature": sign(secret, timestamp, body),
    }
    try:
        response = httpx.post(
            url,
            content=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:300]
    return response.status_code, "" if response.is_success else f"HTTP {response.status_code}"
