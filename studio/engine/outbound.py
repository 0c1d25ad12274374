"""The one guard for every request the studio makes to a URL a client gave (image fetches, webhooks).

A URL is allowed when its scheme is http or https, its host is a name or a canonically written address, and
every address the name resolves to is public. The request then goes to the address that was checked (the
URL's host is kept for the `Host` header and TLS), so a name that answers differently a moment later (DNS
rebinding) reaches nothing new. A redirect is a new URL, checked the same way by the caller.

Refused: loopback, private, link-local, CGNAT (100.64.0.0/10), multicast, reserved and unspecified (0.0.0.0,
::) addresses, and the IPv6 forms that carry an IPv4 address inside (IPv4-mapped ::ffff:0:0/96,
IPv4-compatible ::/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32), whatever the
address inside; and IPv4 written as one number or in octal or hex (`2130706433`, `0177.0.0.1`, `0x7f.1`),
which resolvers read as addresses that the text does not show. Pure Python: no Django here.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# IPv6 ranges that embed (or translate to) an IPv4 address, and IPv4 ranges Python's is_global lets through.
EMBEDDING_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::/96",  # IPv4-compatible (deprecated), :: and ::1 included
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
    )
)
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_DOTTED_QUAD = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")


class OutboundRefused(ValueError):
    """The URL may not or could not be reached; the message says why, for the client."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`pinned_url`, on the checked address) and what to call the host."""

    url: str
    pinned_url: str
    host_header: str
    server_name: str
    address: str

    def headers(self, extra: dict[str, str]) -> dict[str, str]:
        return {**extra, "Host": self.host_header}

    @property
    def extensions(self) -> dict[str, str]:
        """For httpx: TLS checks the certificate against the URL's host, not the address."""
        return {"sni_hostname": self.server_name}


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why the studio must not connect to this address, or None when it is public."""
    if not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified:
        return f"it points to a private or reserved address ({address})"
    if any(address in network for network in EMBEDDING_NETWORKS if network.version == address.version):
        return f"it points to a private or reserved address, or one that carries another inside ({address})"
    return None


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve(host: str, port: int, *, trusted: bool = False) -> str:
    """The first address of `host`, if it and every other address it resolves to are public (or `trusted`:
    the host is one the operator configured, not one a client gave)."""
    literal = _literal_address(host)
    if literal is None and _NUMERIC_HOST.match(host) and not _DOTTED_QUAD.match(host):
        raise OutboundRefused(f"Refused {host}: write an IPv4 address as four decimal numbers.")
    if literal is not None:
        candidates = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise OutboundRefused(f"The host {host} could not be resolved.") from error
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not candidates:
        raise OutboundRefused(f"The host {host} has no address.")
    for address in candidates:
        if trusted:
            break
        if problem := address_problem(address):
            raise OutboundRefused(f"Refused {host}: {problem}.")
    return str(candidates[0])


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, or None when it has no host."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


def check(url: str, *, trusted_origin: str | None = None) -> Target:
    """Check a URL (scheme, host, every address) and pin it to the address checked; OutboundRefused if not.

    `trusted_origin` (scheme, host and port, as in an upstream account's base URL that an operator set) may
    be a private address: a URL on exactly that origin skips the public-address rule, nothing else."""
    if any(character in url for character in "\r\n\t\x00"):
        raise OutboundRefused("The URL contains a control character.")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise OutboundRefused(f"The URL is not valid: {error}.") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused("Only http and https URLs can be reached.")
    if parts.username or parts.password:
        raise OutboundRefused("URLs with a user name or password are not accepted.")
    trusted = trusted_origin is not None and origin_of(url) == origin_of(trusted_origin)
    address = resolve(parts.hostname, port, trusted=trusted)
    host_in_url = f"[{address}]" if ":" in address else address
    return Target(
        url=url,
        pinned_url=parts._replace(netloc=f"{host_in_url}:{port}").geturl(),
        host_header=parts.netloc,
        server_name=parts.hostname,
        address=address,
    )
