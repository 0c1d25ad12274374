"""Fetch an image a client gave by URL, safely: through the outbound guard (`studio.engine.outbound`: public
addresses only, the connection pinned to the address checked), every redirect checked again, with size and
time limits, and the type sniffed from the content. Pure Python: no models here."""

import time
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from studio.engine import outbound
from studio.engine.images import CheckedImage, ImageProblem, check_image
from studio.engine.outbound import OutboundRefused

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 30 * 1024 * 1024
    timeout_seconds: float = 20.0


def check_url(url: str) -> None:
    """Refuse, before anything is charged, a URL that could never be fetched. (The fetch checks again, every
    hop, when it happens.)"""
    outbound.check(url)


def fetch_image(
    url: str,
    *,
    limits: Limits = Limits(),
    transport: httpx.BaseTransport | None = None,
    trusted_origin: str | None = None,
) -> CheckedImage:
    """Fetch and check an image. `transport` replaces the network, for tests. `trusted_origin`: the base URL
    of an upstream account, whose own links may be on a private address (see `outbound.check`)."""
    with httpx.Client(transport=transport, follow_redirects=False) as client:
        return _fetch(client, url, limits, trusted_origin)


def _fetch(client: httpx.Client, url: str, limits: Limits, trusted_origin: str | None = None) -> CheckedImage:
    deadline = time.monotonic() + limits.timeout_seconds
    for _ in range(MAX_REDIRECTS + 1):
        # Connect to the address just checked (not a second lookup an attacker could answer differently).
        target = outbound.check(url, trusted_origin=trusted_origin)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundRefused("Fetching the image took too long.")
        try:
            with client.stream(
                "GET",
                target.pinned_url,
                headers=target.headers({"User-Agent": "Studio image fetcher"}),
                extensions=target.extensions,
                timeout=remaining,
            ) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise OutboundRefused(f"The image URL answered HTTP {response.status_code}.")
                declared = int(response.headers.get("content-length") or 0)
                if declared > limits.max_bytes:
                    raise OutboundRefused(f"The image is larger than {limits.max_bytes // (1024 * 1024)} MB.")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise OutboundRefused(
                            f"The image is larger than {limits.max_bytes // (1024 * 1024)} MB."
                        )
                    if time.monotonic() > deadline:
                        raise OutboundRefused("Fetching the image took too long.")
        except httpx.HTTPError as error:
            raise OutboundRefused(f"The image could not be fetched: {type(error).__name__}.") from error
        try:
            return check_image(bytes(body), max_bytes=limits.max_bytes)
        except ImageProblem as error:
            raise OutboundRefused(str(error)) from error
    raise OutboundRefused("The image URL redirected too many times.")
