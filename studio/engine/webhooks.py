"""Tell an API client that its task finished: POST the task's final status to its callback URL, signed.

Headers of every delivery:
    X-Studio-Event: task.finished
    X-Studio-Delivery: <delivery id>           unique per attempt
    X-Studio-Timestamp: <unix seconds>
    X-Studio-Signature: sha256=<hex>           HMAC-SHA256 of "<timestamp>.<body>", keyed by the key's
                                               webhook secret (shown once on the API keys page)

For a day after the secret is rotated (WEBHOOK_SECRET_OVERLAP_SECONDS), the header carries one signature
per secret, newest first, comma-separated (`sha256=<new>,sha256=<old>`): a receiver accepts the delivery
when any of them matches its secret, so it can move to the new secret in its own time.

A receiver verifies the signature, refuses old timestamps, and deduplicates by the task id in the body (a
delivery may be retried after a timeout the receiver did in fact process).
"""

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from studio.engine import outbound
from studio.engine.outbound import OutboundRefused


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def sign_all(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The signature header: one signature per secret, the current secret's first."""
    return ",".join(sign(secret, timestamp, body) for secret in secrets)


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_seconds: int = 300) -> bool:
    """For receivers (and tests): is this a fresh delivery signed with `secret`, by any of the signatures of
    the header?"""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - stamp) > tolerance_seconds:
        return False
    expected = sign(secret, stamp, body)
    return any(hmac.compare_digest(expected, given.strip()) for given in (signature or "").split(","))


def post(
    url: str,
    payload: dict[str, Any],
    *,
    secrets: list[str],
    delivery_id: str,
    transport: httpx.BaseTransport | None = None,
) -> tuple[int | None, str]:
    """One delivery: (status code, error). Through the outbound guard: resolved once, and sent to the address
    checked (a name that answers otherwise at delivery reaches nothing new), unless settings allow private
    addresses (local testing). Redirects are not followed. `transport` replaces the network, for tests."""
    try:
        target = _target(url)
    except OutboundRefused as error:
        return None, str(error)[:300]
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Studio webhooks",
        "X-Studio-Event": "task.finished",
        "X-Studio-Delivery": delivery_id,
        "X-Studio-Timestamp": str(timestamp),
        "X-Studio-Signature": sign_all(secrets, timestamp, body),
    }
    try:
        with httpx.Client(transport=transport, follow_redirects=False) as client:
            response = client.post(
                target.pinned_url,
                content=body,
                headers=target.headers(headers),
                extensions=target.extensions,
                timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            )
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:300]
    return response.status_code, "" if response.is_success else f"HTTP {response.status_code}"


def _target(url: str) -> outbound.Target:
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return outbound.check(url)
    # Local testing only: any address, still one lookup-free request to the URL as given.
    parts = urlsplit(url)
    return outbound.Target(
        url=url, pinned_url=url, host_header=parts.netloc, server_name=parts.hostname or "", address=""
    )
