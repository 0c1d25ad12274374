"""The outbound guard: one check for every URL the studio reaches on a client's word (image fetches,
webhooks). Table-driven: each refused form, each allowed one, and a name that changes its answer between the
check and the connection."""

import socket

import httpx
import pytest

from studio.engine import outbound, webhooks
from studio.engine.fetch import fetch_image
from studio.engine.outbound import OutboundRefused
from tests.conftest import png_bytes

PUBLIC = "93.184.215.14"

REFUSED = [
    ("http://127.0.0.1/x.png", "loopback"),
    ("http://10.1.2.3/x.png", "private 10/8"),
    ("http://172.16.0.1/x.png", "private 172.16/12"),
    ("http://192.168.1.1/x.png", "private 192.168/16"),
    ("http://169.254.169.254/latest/meta-data/", "link-local, cloud metadata"),
    ("http://100.64.0.1/x.png", "CGNAT"),
    ("http://224.0.0.1/x.png", "multicast"),
    ("http://240.0.0.1/x.png", "reserved"),
    ("http://255.255.255.255/x.png", "broadcast"),
    ("http://0.0.0.0/x.png", "unspecified"),
    ("http://[::]/x.png", "unspecified IPv6"),
    ("http://[::1]/x.png", "IPv6 loopback"),
    ("http://[fe80::1]/x.png", "IPv6 link-local"),
    ("http://[fc00::1]/x.png", "IPv6 unique local"),
    ("http://[ff02::1]/x.png", "IPv6 multicast"),
    ("http://[::ffff:127.0.0.1]/x.png", "IPv4-mapped loopback"),
    ("http://[::ffff:8.8.8.8]/x.png", "IPv4-mapped, even of a public address"),
    ("http://[::7f00:1]/x.png", "IPv4-compatible loopback"),
    ("http://[64:ff9b::7f00:1]/x.png", "NAT64 of loopback"),
    ("http://[64:ff9b::808:808]/x.png", "NAT64, even of a public address"),
    ("http://[64:ff9b:1::1]/x.png", "local-use NAT64"),
    ("http://[2002:7f00:1::]/x.png", "6to4 of loopback"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x.png", "Teredo"),
    ("http://2130706433/x.png", "IPv4 as one decimal number"),
    ("http://0x7f000001/x.png", "IPv4 as one hex number"),
    ("http://0177.0.0.1/x.png", "IPv4 in octal"),
    ("http://0x7f.0.0.1/x.png", "IPv4 in hex parts"),
    ("http://127.1/x.png", "IPv4 with parts left out"),
    ("http://localhost/x.png", "a name of loopback"),
    ("file:///etc/passwd", "file scheme"),
    ("ftp://images.example/x.png", "ftp scheme"),
    ("gopher://images.example/", "gopher scheme"),
    ("javascript:alert(1)", "no host"),
    ("http://user:secret@images.example/x.png", "credentials in the URL"),
    ("http://images.example/x.png\r\nX-Injected: 1", "CR/LF"),
    ("http://images.example:99999/x.png", "a port out of range"),
]

ALLOWED = [
    (f"http://{PUBLIC}/x.png", PUBLIC),
    ("https://[2606:4700:4700::1111]/x.png", "2606:4700:4700::1111"),
    ("https://images.example/x.png", PUBLIC),
    ("https://images.example:8443/x.png", PUBLIC),
]


@pytest.fixture
def public_dns(monkeypatch):
    """Names under .example resolve to a public address (no network in tests); everything else as usual."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if str(host).endswith(".example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.mark.parametrize(("url", "why"), REFUSED, ids=[why for _, why in REFUSED])
def test_it_refuses(public_dns, url, why):
    with pytest.raises(OutboundRefused):
        outbound.check(url)


@pytest.mark.parametrize(("url", "address"), ALLOWED, ids=[url for url, _ in ALLOWED])
def test_it_allows_public_addresses_and_pins_the_connection_to_them(public_dns, url, address):
    target = outbound.check(url)
    assert target.address == address
    assert target.server_name in url and target.host_header in url
    assert address in target.pinned_url


def test_a_name_with_one_private_answer_among_public_ones_is_refused(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(OutboundRefused, match="private or reserved"):
        outbound.check("https://mixed.example/x.png")


@pytest.fixture
def rebinding_dns(monkeypatch):
    """A name that answers a public address at the check and loopback at any later lookup."""
    lookups = []

    def resolve(host, port, *args, **kwargs):
        lookups.append(host)
        address = PUBLIC if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return lookups


def test_a_fetch_goes_to_the_address_checked_even_if_the_name_changes_its_answer(rebinding_dns):
    connected = []

    def answer(request):
        connected.append((request.url.host, request.headers["host"]))
        return httpx.Response(200, content=png_bytes())

    fetch_image("https://rebind.example/cat.png", transport=httpx.MockTransport(answer))
    assert connected == [(PUBLIC, "rebind.example")]
    assert rebinding_dns == ["rebind.example"]  # resolved once


def test_a_webhook_goes_to_the_address_checked_even_if_the_name_changes_its_answer(rebinding_dns, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    connected = []

    def answer(request):
        connected.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        return httpx.Response(204)

    status, error = webhooks.post(
        "https://rebind.example/hooks",
        {"event": "task.finished"},
        secrets=["s"],
        delivery_id="d-1",
        transport=httpx.MockTransport(answer),
    )
    assert (status, error) == (204, "")
    assert connected == [(PUBLIC, "rebind.example", "rebind.example")]
    assert rebinding_dns == ["rebind.example"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://[64:ff9b::7f00:1]/hook", "http://2130706433/"]
)
def test_a_webhook_to_a_refused_address_is_not_sent(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    def never(request):
        raise AssertionError("no connection may be made")

    status, error = webhooks.post(
        url,
        {"event": "task.finished"},
        secrets=["s"],
        delivery_id="d-1",
        transport=httpx.MockTransport(never),
    )
    assert status is None and "Refused" in error


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8123/results/1.png", True),  # exactly the account's origin
        ("http://127.0.0.1:8124/results/1.png", False),  # another port
        ("https://127.0.0.1:8123/results/1.png", False),  # another scheme
        ("http://127.0.0.2:8123/results/1.png", False),  # another host
        ("http://localhost:8123/results/1.png", False),  # another name for it
    ],
)
def test_an_upstream_accounts_own_origin_may_be_private_and_nothing_else(url, allowed):
    trusted = "http://127.0.0.1:8123"
    if allowed:
        assert outbound.check(url, trusted_origin=trusted).address == "127.0.0.1"
    else:
        with pytest.raises(OutboundRefused, match="private or reserved"):
            outbound.check(url, trusted_origin=trusted)
