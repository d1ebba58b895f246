"""Addresses and networks as proxies and operators write them."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


class NetworkSet:
    """Membership in any of several networks, v4 and v6 kept apart."""

    def __init__(self, networks: Iterable[Network]) -> None:
        # Kept apart by version: `in` compares the integers of the addresses,
        # so a v4 address could otherwise match a v6 network.
        networks = list(networks)
        self._v4 = [net for net in networks if isinstance(net, IPv4Network)]
        self._v6 = [net for net in networks if isinstance(net, IPv6Network)]

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    def __contains__(self, address: IPAddress) -> bool:
        if isinstance(address, IPv4Address):
            return any(address in net for net in self._v4)
        return any(address in net for net in self._v6)


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: bare, `v4:port`, `[v6]` or `[v6]:port`; else None."""
    text = text.strip()
    host = text
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :]
        if end < 0 or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        host = text[1:end]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ip_address(host)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
