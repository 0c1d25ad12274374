"""Fetch an image a client gave by URL, safely: only public addresses (redirects included, each hop checked,
and the connection pinned to the checked address), with size and time limits, and the type sniffed from the
content. Pure Python: no models here."""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from studio.engine.images import CheckedImage, ImageProblem, check_image

MAX_REDIRECTS = 3


class FetchRefused(ValueError):
    """The URL may not or could not be fetched; the message says why, for the client."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 30 * 1024 * 1024
    timeout_seconds: float = 20.0


def _public_address(host: str, port: int) -> str:
    """The first address of `host`, if every address it resolves to is public; else FetchRefused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise FetchRefused(f"The host {host} could not be resolved.") from error
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise FetchRefused(
                f"Refused to fetch {host}: it points to a private or reserved address ({address})."
            )
        addresses.append(str(address))
    if not addresses:
        raise FetchRefused(f"The host {host} has no address.")
    return addresses[0]


def check_url(url: str) -> None:
    """Refuse, before anything is charged, a URL that could never be fetched: a wrong scheme, or a host that
    resolves to a private address. (The fetch checks again, every hop, when it happens.)"""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("Only http and https image URLs can be fetched.")
    _public_address(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def fetch_image(
    url: str, *, limits: Limits = Limits(), transport: httpx.BaseTransport | None = None
) -> CheckedImage:
    """Fetch and check an image. `transport` replaces the network, for tests."""
    with httpx.Client(transport=transport, follow_redirects=False) as client:
        return _fetch(client, url, limits)


def _fetch(client: httpx.Client, url: str, limits: Limits) -> CheckedImage:
    deadline = time.monotonic() + limits.timeout_seconds
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused("Only http and https image URLs can be fetched.")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _public_address(parts.hostname, port)
        # Connect to the address just checked (not a second lookup an attacker could answer differently).
        host_in_url = f"[{address}]" if ":" in address else address
        pinned = parts._replace(netloc=f"{host_in_url}:{port}").geturl()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchRefused("Fetching the image took too long.")
        try:
            with client.stream(
                "GET",
                pinned,
                headers={"Host": parts.netloc.rpartition("@")[2], "User-Agent": "Studio image fetcher"},
                extensions={"sni_hostname": parts.hostname},
                timeout=remaining,
            ) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise FetchRefused(f"The image URL answered HTTP {response.status_code}.")
                declared = int(response.headers.get("content-length") or 0)
                if declared > limits.max_bytes:
                    raise FetchRefused(f"The image is larger than {limits.max_bytes // (1024 * 1024)} MB.")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise FetchRefused(
                            f"The image is larger than {limits.max_bytes // (1024 * 1024)} MB."
                        )
                    if time.monotonic() > deadline:
                        raise FetchRefused("Fetching the image took too long.")
        except httpx.HTTPError as error:
            raise FetchRefused(f"The image could not be fetched: {type(error).__name__}.") from error
        try:
            return check_image(bytes(body), max_bytes=limits.max_bytes)
        except ImageProblem as error:
            raise FetchRefused(str(error)) from error
    raise FetchRefused("The image URL redirected too many times.")
