"""Where the service may send requests: the networks of sources and API targets, and credentials per host.

A source is called only at an address the policy allows: a literal address (or localhost) is
checked when it is saved, every request after DNS resolution (each redirect included), and every
new connection by the address it really reached (so a name resolving elsewhere in between does not
slip through). By
default every address is allowed but loopback, link-local (cloud metadata services live there),
unspecified, multicast and reserved ones; `SYNC_DENY_PRIVATE_NETWORKS` adds the private ranges.
An IPv6 address that carries an IPv4 one (IPv4-mapped, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4
2002::/16, Teredo 2001::/32) is judged as the IPv4 address inside, where a translator sends it.
`SYNC_ALLOWED_NETWORKS`, when set, is an allow-list: only the networks it names may be called,
denied ones included (a test suite naming 127.0.0.0/8, an intranet naming 10.0.0.0/8).

Credentials go only to the origin (scheme, host and port) of the source's location: a next link,
a Link header or a redirect to another origin is followed without them, or refused when
`SYNC_CROSS_HOST_REQUESTS` is `refuse`.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings

from syncapp.errors import SyncError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DENIED_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(cidr) for cidr in (
        "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "192.0.0.0/24", "224.0.0.0/4",
        "240.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "fe80::/10", "ff00::/8", "fd00:ec2::254/128",
    )
)
PRIVATE_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
SCHEMES = ("http", "https")


class EgressRefused(SyncError):
    """A request to an address or host the policy does not allow; the message names it and the setting."""


NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
TEREDO = ipaddress.ip_network("2001::/32")
# RFC 6052's places of the IPv4 address for each prefix length a local-use NAT64 prefix may have inside
# 64:ff9b:1::/48: (first bit, last bit + 1) of its pieces, skipping bits 64-71 (the "u" octet).
NAT64_LOCAL_LAYOUTS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((48, 64), (72, 88)), ((56, 64), (72, 96)), ((72, 104),), ((96, 128),),
)


def _bits(value: int, *, first: int, end: int) -> int:
    """Return bits first..end-1 of a 128-bit number, bit 0 the most significant."""
    return (value >> (128 - end)) & ((1 << (end - first)) - 1)


def _nat64_local(address: ipaddress.IPv6Address) -> list[Address]:
    """Return every IPv4 address a local-use NAT64 address may hold: its prefix length is the network's own."""
    value = int(address)
    found: list[Address] = []
    for layout in NAT64_LOCAL_LAYOUTS:
        ipv4 = 0
        for first, end in layout:
            ipv4 = (ipv4 << (end - first)) | _bits(value, first=first, end=end)
        found.append(ipaddress.IPv4Address(ipv4))
    return found


def _judged(address: Address) -> list[Address]:
    """Return the addresses a request to this address really reaches, to be judged by the policy.

    An IPv6 address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) is judged by the
    IPv4 address inside: a translator or relay sends the request there (64:ff9b::a9fe:a9fe is
    169.254.169.254). A Teredo address names its server and its client: both are judged.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in NAT64_WELL_KNOWN:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in NAT64_LOCAL:
        return _nat64_local(address)
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address in TEREDO and address.teredo is not None:
        return list(address.teredo)
    return [address]


def address_refusal(address: Address) -> str | None:
    """Return why the policy refuses an address, or None when it may be called.

    An address carrying an IPv4 address is judged by it (see _judged), named with what it carries.
    """
    for judged in _judged(address):
        refusal = _plain_address_refusal(judged)
        if refusal is not None:
            return refusal if judged == address else f"{address} carries {judged}: {refusal}"
    return None


def _plain_address_refusal(address: Address) -> str | None:
    allowed: tuple[Network, ...] = settings.SYNC_ALLOWED_NETWORKS
    if allowed:
        if any(address in network for network in allowed if network.version == address.version):
            return None
        return f"{address} is not in SYNC_ALLOWED_NETWORKS"
    denied = DENIED_NETWORKS + (PRIVATE_NETWORKS if settings.SYNC_DENY_PRIVATE_NETWORKS else ())
    for network in denied:
        if network.version == address.version and address in network:
            kind = "a private network" if network in PRIVATE_NETWORKS else "a loopback, link-local or reserved network"
            return f"{address} is in {kind} ({network}), which sources may not call (see SYNC_ALLOWED_NETWORKS)"
    return None


def _addresses(host: str, port: int) -> list[Address]:
    """Return the addresses a host name resolves to (a literal address is its own)."""
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%", 1)[0])]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def url_refusal(url: str, *, resolve: bool = True) -> str | None:
    """Return why a URL may not be called (scheme, host, or an address it resolves to), or None.

    With `resolve` off, or when the name does not resolve, only a literal address is judged.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return f"{url!r} is not a valid URL ({error})"
    if parts.scheme.lower() not in SCHEMES:
        return f"only http:// and https:// URLs may be called, not {parts.scheme or 'a URL without scheme'}://"
    host = parts.hostname
    if not host:
        return f"{url!r} names no host"
    port = port or (443 if parts.scheme.lower() == "https" else 80)
    return host_refusal(host, port=port, resolve=resolve)


def host_refusal(host: str, *, port: int, resolve: bool = True) -> str | None:
    """Return why a host may not be called (an address it is or resolves to), or None.

    With `resolve` off, or when the name does not resolve, only a literal address is judged.
    """
    try:
        addresses = _host_addresses(host, port=port, resolve=resolve)
    except (OSError, UnicodeError, ValueError):
        return None  # not resolvable here (or not a literal): judged again when it is called
    for address in addresses:
        refusal = address_refusal(address)
        if refusal is not None:
            return f"{host}: {refusal}" if host.strip("[]") != str(address) else refusal
    return None


def _host_addresses(host: str, *, port: int, resolve: bool) -> list[Address]:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    return _addresses(host, port) if resolve else [ipaddress.ip_address(host.strip("[]"))]


def host_addresses_allowed(host: str, *, port: int) -> list[Address]:
    """Return the addresses a host resolves to, all allowed by the policy; raise EgressRefused otherwise.

    A connection made to one of them (not to the name again) cannot be sent elsewhere by a second lookup.
    """
    addresses = _host_addresses(host, port=port, resolve=True)  # OSError: it does not resolve (now)
    for address in addresses:
        refusal = address_refusal(address)
        if refusal is not None:
            raise EgressRefused(f"{host}: {refusal}" if host.strip("[]") != str(address) else refusal)
    return addresses


def url_check(url: str) -> None:
    """Raise EgressRefused when the policy refuses the URL, after resolving its host."""
    refusal = url_refusal(url)
    if refusal is not None:
        raise EgressRefused(refusal)


def peer_check(sock: socket.socket, *, host: str) -> None:
    """Raise EgressRefused when a connected socket's peer is an address the policy refuses.

    The address a name resolved to when the URL was checked may not be the one connected to: the
    name may resolve again, to another address, in between (DNS rebinding). The connected peer is
    what counts.
    """
    try:
        peer = sock.getpeername()[0]
    except OSError:
        return  # not connected after all: the request fails on its own
    refusal = address_refusal(ipaddress.ip_address(str(peer).split("%", 1)[0]))
    if refusal is not None:
        raise EgressRefused(f"{host} connected to {refusal}")


def origin(url: str) -> tuple[str, str, int | None]:
    """Return the origin of a URL: scheme, host and port, the default port spelled out."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", url, None)
    scheme = parts.scheme.lower()
    return (scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme))


def same_origin(url: str, other: str) -> bool:
    """Return whether two URLs share scheme, host and port: only then do credentials go along.

    The move of a host from http to https on the default ports is the same host, made safer.
    """
    first, second = origin(url), origin(other)
    upgraded = {("http", 80), ("https", 443)}
    return first == second or (
        first[1] == second[1] and {(first[0], first[2]), (second[0], second[2])} == upgraded
    )


def cross_host_refused() -> bool:
    """Return whether a request to another origin than the source's is refused, not sent without credentials."""
    return settings.SYNC_CROSS_HOST_REQUESTS == "refuse"


# A name in single braces ({location}, {host}): what a shipped configuration writes where the URL goes.
PLACEHOLDER = re.compile(r"(?<!\{)\{[A-Za-z_][\w.-]*\}(?!\})")


def location_problems(location: object, *, path: str = "location") -> list[str]:
    """Return the problems of an HTTP location as saved: its form, and whether the policy lets it be called."""
    if not isinstance(location, str) or not location.strip():
        return [f"{path}: an api source needs an http:// or https:// URL"]
    placeholder = PLACEHOLDER.search(location)
    if placeholder:
        return [f"{path}: {placeholder.group(0)} is a placeholder: put the http:// or https:// URL of the API in its "
                "place"]
    if not location.lower().startswith(("http://", "https://")):
        return [f"{path}: an api source needs an http:// or https:// URL"]
    # Names are resolved when called, not when saved: a saved name may resolve elsewhere by then anyway.
    refusal = url_refusal(location, resolve=False)
    return [f"{path}: {refusal}"] if refusal else []
