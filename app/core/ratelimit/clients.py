"""Which budget a client address counts against."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

from app.core.networks import parse_address

UNKNOWN_CLIENT = "unknown"
# One IPv6 subscriber holds at least a /64 and can pick any address in it
# (privacy addresses rotate by themselves), so a limit per IPv6 address is a
# limit nobody reaches. A /64 is the smallest block one party can be held to.
IPV6_PREFIX_LENGTH = 64


def client_key(address: str | None) -> str:
    """The IPv4 address, the /64 of an IPv6 address, or the text as given when it is no address."""
    parsed = parse_address(address) if address else None
    if parsed is None:
        return address or UNKNOWN_CLIENT
    if isinstance(parsed, IPv6Address):
        return str(IPv6Network((parsed, IPV6_PREFIX_LENGTH), strict=False))
    return str(parsed)
