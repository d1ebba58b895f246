"""The real client address, worked out once for everything downstream.

Only a direct peer listed in TRUSTED_PROXIES may name the client, through
the one header the proxies are configured to write (X-Forwarded-For, or
RFC 7239 `Forwarded`). Reading the chain from the right, each trusted proxy
vouches for the hop before it; the first address that is not a trusted proxy
is the client. Anything a client writes into the header itself sits to the
left of that point and is never reached. The answer replaces
`scope["client"]`, so logs, audit events and rate limits all see one address.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.networks import IPAddress, Network, NetworkSet, parse_address


def _split_outside_quotes(text: str, separator: str) -> Iterator[str]:
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            yield text[start:index]
            start = index + 1
    yield text[start:]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def forwarded_for_chain(header: str) -> list[IPAddress | None]:
    """The `for=` of each RFC 7239 element; None where it is missing, hidden or malformed."""
    chain: list[IPAddress | None] = []
    for element in _split_outside_quotes(header, ","):
        found: IPAddress | None = None
        for pair in _split_outside_quotes(element, ";"):
            name, sep, value = pair.partition("=")
            if sep and name.strip().lower() == "for":
                found = parse_address(_unquote(value))
                break
        chain.append(found)
    return chain


def x_forwarded_for_chain(header: str) -> list[IPAddress | None]:
    return [parse_address(part) for part in header.split(",")]


def resolve_client(
    peer: IPAddress, chain: Sequence[IPAddress | None], trusted: NetworkSet
) -> IPAddress:
    """The rightmost address that is not a trusted proxy, starting from a trusted peer.

    An entry that cannot be read stops the walk: the nearest trusted hop is as
    far as anyone can vouch for. When every hop is trusted, the leftmost one
    is the client (a proxy talking to the app on its own behalf).
    """
    client = peer
    for hop in reversed(chain):
        if hop is None:
            break
        client = hop
        if hop not in trusted:
            break
    return client


class ClientAddressMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Iterable[Network],
        header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
    ) -> None:
        self.app = app
        self.trusted = NetworkSet(trusted_proxies)
        self.header = header.encode("latin-1")
        self.parse_chain = forwarded_for_chain if header == "forwarded" else x_forwarded_for_chain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted and scope["type"] in ("http", "websocket"):
            self._rewrite(scope)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope) -> None:
        client = scope.get("client")
        peer = parse_address(client[0]) if client else None
        if peer is None or peer not in self.trusted:
            return
        # Repeated header lines are one comma-separated list (RFC 9110 §5.3).
        values = [value for name, value in scope["headers"] if name == self.header]
        if not values:
            return
        chain = self.parse_chain(",".join(value.decode("latin-1") for value in values))
        real = resolve_client(peer, chain, self.trusted)
        # The client's own port is not known past a proxy.
        scope["client"] = (str(real), 0)
