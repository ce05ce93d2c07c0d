"""Decide whether a URL may be fetched: http(s) only, and public addresses only.

A search result is untrusted input. Without this guard a crafted result (or a redirect
from an innocent-looking page) could make phichat read the user's router admin page,
a cloud metadata endpoint or a service on localhost. The check runs on the resolved
addresses, before every connection and again after every redirect.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")

# Ranges the ipaddress flags miss or that deserve to be named explicitly:
# 100.64.0.0/10 is carrier-grade NAT (shared address space, not the public internet),
# 64:ff9b:1::/48 is local-use NAT64, and 2002::/16 (6to4) can embed a private IPv4.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "64:ff9b:1::/48")
)


class UrlRefused(Exception):
    """The URL must not be fetched; ``str(error)`` says why, in a few words."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv4-mapped, NAT64, 6to4 or Teredo IPv6 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    # IPv4-compatible addresses (::a.b.c.d, deprecated) still route to the IPv4 host.
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def is_public_address(ip: str | IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address.

    Loopback, private, link-local, unspecified, multicast, reserved, documentation and
    carrier-grade NAT ranges are all refused, including when an IPv6 address embeds one.
    """
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0] if isinstance(ip, str) else ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or any(address in net for net in _EXTRA_BLOCKED if net.version == address.version)
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False
    return address.is_global


def check_url_syntax(url: str) -> tuple[str, int]:
    """Return (host, port) of an http(s) URL, or raise ``UrlRefused``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("malformed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UrlRefused(f"scheme {scheme or 'missing'!r} is not http or https")
    host = parts.hostname
    if not host:
        raise UrlRefused("URL has no host")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL from a search result are never legitimate and can hide the host.
        raise UrlRefused("URL carries credentials")
    return host, port or (443 if scheme == "https" else 80)


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order (blocking; use a thread).

    The order matters: getaddrinfo puts first what this machine can reach (RFC 6724), so
    an IPv4-only network gets the IPv4 address of a dual-stack site first.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, allow_private: bool) -> list[str]:
    """Refuse non-http(s) URLs, and hosts with any non-public address unless allowed.

    Every address the name resolves to is checked, not just the first: a name that
    resolves to one public and one private address could otherwise be steered to the
    private one by the connection logic.

    Returns the vetted addresses the connection must use for a host name, in the
    resolver's order (try the next when one cannot be reached), so that no second lookup
    (which a hostile DNS server could answer differently: "DNS rebinding") decides where
    it goes. An empty list means there is nothing to pin: the host is an address already,
    or private addresses are allowed.
    """
    host, port = check_url_syntax(url)
    if allow_private:
        return []
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else resolve(host, port)
    if not addresses:
        raise UrlRefused(f"{host} has no address")
    for address in addresses:
        if not is_public_address(address):
            raise UrlRefused(f"{host} resolves to a non-public address ({address})")
    return [] if literal is not None else addresses
