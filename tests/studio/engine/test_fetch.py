"""Server-side fetches of client-given image URLs refuse private, loopback, link-local and metadata addresses,
redirects included."""

import socket

import httpx
import pytest

from studio.engine.fetch import Limits, fetch_image
from studio.engine.outbound import OutboundRefused
from tests.conftest import png_bytes

PUBLIC = "93.184.215.14"


@pytest.fixture
def public_dns(monkeypatch):
    """Names under .example resolve to a public address (no network in tests); everything else as usual."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if str(host).endswith(".example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/image.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/image.png",
        "http://192.168.1.10/image.png",
        "http://[::1]/image.png",
        "http://localhost:8000/image.png",  # a name resolving to loopback
        "http://0.0.0.0/image.png",
    ],
)
def test_private_and_loopback_addresses_are_refused(url):
    def never(request):
        raise AssertionError("no connection may be made")

    with pytest.raises(OutboundRefused, match="private or reserved"):
        fetch_image(url, transport=httpx.MockTransport(never))


def test_a_redirect_to_a_private_address_is_refused(public_dns):
    requested = []

    def answer(request):
        requested.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://10.0.0.1/secret.png"})

    with pytest.raises(OutboundRefused, match="private or reserved"):
        fetch_image("https://images.example/cat.png", transport=httpx.MockTransport(answer))
    assert len(requested) == 1


def test_the_connection_is_pinned_to_the_checked_address(public_dns):
    seen = {}

    def answer(request):
        seen["url"], seen["host"] = str(request.url), request.headers["host"]
        return httpx.Response(200, content=png_bytes())

    image = fetch_image("https://images.example/cat.png", transport=httpx.MockTransport(answer))
    assert image.format == "png"
    assert seen == {"url": f"https://{PUBLIC}/cat.png", "host": "images.example"}


def test_only_http_and_https_are_fetched():
    for url in ("file:///etc/passwd", "ftp://images.example/x.png", "gopher://x"):
        with pytest.raises(OutboundRefused):
            fetch_image(url)


def test_size_and_type_are_checked(public_dns):
    big = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 2048))
    with pytest.raises(OutboundRefused, match=r"over|larger"):
        fetch_image("https://images.example/big.png", limits=Limits(max_bytes=1024), transport=big)
    text = httpx.MockTransport(lambda request: httpx.Response(200, content=b"<html>not an image</html>"))
    with pytest.raises(OutboundRefused, match="PNG, JPEG or WebP"):
        fetch_image("https://images.example/page.png", transport=text)
    missing = httpx.MockTransport(lambda request: httpx.Response(404))
    with pytest.raises(OutboundRefused, match="404"):
        fetch_image("https://images.example/gone.png", transport=missing)


def test_too_many_redirects_are_refused(public_dns):
    loop = httpx.MockTransport(lambda request: httpx.Response(302, headers={"Location": "/again"}))
    with pytest.raises(OutboundRefused, match="too many"):
        fetch_image("https://images.example/loop", transport=loop)
