"""The real client address, worked out once for everything downstream.

Only a direct peer listed in TRUSTED_PROXIES may name the client, through
the one header the proxies are configured to write (X-Forwarded-For, or
RFC 7239 `Forwarded`). Reading the chain from the right, each trusted proxy
vouches for the hop before it; the first address that is not a trusted proxy
is the client. Anything a client writes into the header itself sits to the
left of that point and is never reached. The answer replaces
`scope["client"]`, so logs, audit events and rate limits all see one address.

The same trusted proxy also says which scheme the client used
(`X-Forwarded-Proto`, or `proto=` in the `Forwarded` element that names the
client): behind a TLS-terminating proxy the app itself is spoken to over
plain HTTP, and every URL it builds (redirects, `Location`) would otherwise
downgrade the client to `http://`.
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


def _forwarded_parameter(element: str, wanted: str) -> str | None:
    for pair in _split_outside_quotes(element, ";"):
        name, sep, value = pair.partition("=")
        if sep and name.strip().lower() == wanted:
            return _unquote(value)
    return None


def forwarded_for_chain(header: str) -> list[IPAddress | None]:
    """The `for=` of each RFC 7239 element; None where it is missing, hidden or malformed."""
    chain: list[IPAddress | None] = []
    for element in _split_outside_quotes(header, ","):
        value = _forwarded_parameter(element, "for")
        chain.append(None if value is None else parse_address(value))
    return chain


def forwarded_proto_chain(header: str) -> list[str | None]:
    """The `proto=` of each RFC 7239 element, lower-cased; None where it is missing."""
    chain: list[str | None] = []
    for element in _split_outside_quotes(header, ","):
        value = _forwarded_parameter(element, "proto")
        chain.append(None if value is None else value.strip().lower())
    return chain


def x_forwarded_for_chain(header: str) -> list[IPAddress | None]:
    return [parse_address(part) for part in header.split(",")]


def x_forwarded_proto_chain(header: str) -> list[str | None]:
    return [part.strip().lower() or None for part in header.split(",")]


def resolve_client(
    peer: IPAddress, chain: Sequence[IPAddress | None], trusted: NetworkSet
) -> IPAddress:
    """The rightmost address that is not a trusted proxy, starting from a trusted peer.

    An entry that cannot be read stops the walk: the nearest trusted hop is as
    far as anyone can vouch for. When every hop is trusted, the leftmost one
    is the client (a proxy talking to the app on its own behalf).
    """
    return _walk(peer, chain, trusted)[0]


def _walk(
    peer: IPAddress, chain: Sequence[IPAddress | None], trusted: NetworkSet
) -> tuple[IPAddress, int | None]:
    """The client, and the index in `chain` of the entry that named it (None: the peer)."""
    client, position = peer, None
    for index in range(len(chain) - 1, -1, -1):
        hop = chain[index]
        if hop is None:
            break
        client, position = hop, index
        if hop not in trusted:
            break
    return client, position


# The schemes a proxy may report; anything else is ignored, not trusted blindly.
_SCHEMES = {
    "http": {"http": "http", "https": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}


def forwarded_scheme(
    scope_type: str, protos: Sequence[str | None], position: int | None, aligned: bool
) -> str | None:
    """The scheme the client used, as the trusted proxy that met it reports it.

    With RFC 7239 each element describes one hop, so the element that named the
    client carries its `proto`. `X-Forwarded-Proto` is usually written whole by
    the proxy (one value); when it is a list as long as the address chain the
    entries line up with it, otherwise only the rightmost value, written by the
    nearest trusted proxy, is believed.
    """
    if not protos:
        return None
    if aligned and position is not None and len(protos) > position:
        proto = protos[position]
    elif aligned:
        return None
    else:
        proto = protos[-1]
    return _SCHEMES[scope_type].get(proto) if proto else None


class ClientAddresses:
    """Rewrites a scope's client (and scheme) from what a trusted proxy says."""

    def __init__(
        self,
        trusted_proxies: Iterable[Network],
        header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
    ) -> None:
        self.trusted = NetworkSet(trusted_proxies)
        self.header = header.encode("latin-1")
        self.rfc7239 = header == "forwarded"
        self.parse_chain = forwarded_for_chain if self.rfc7239 else x_forwarded_for_chain

    def rewrite(self, scope: Scope) -> None:
        if self.trusted:
            self._rewrite(scope)

    def _rewrite(self, scope: Scope) -> None:
        client = scope.get("client")
        peer = parse_address(client[0]) if client else None
        if peer is None or peer not in self.trusted:
            return
        header = _joined(scope, self.header)
        position: int | None = None
        chain_length = 0
        if header is not None:
            chain = self.parse_chain(header)
            real, position = _walk(peer, chain, self.trusted)
            chain_length = len(chain)
            # The client's own port is not known past a proxy.
            scope["client"] = (str(real), 0)
        scheme = self._scheme(scope, header, position, chain_length)
        if scheme is not None:
            scope["scheme"] = scheme

    def _scheme(
        self, scope: Scope, header: str | None, position: int | None, chain_length: int
    ) -> str | None:
        if self.rfc7239:
            protos = forwarded_proto_chain(header) if header is not None else []
            return forwarded_scheme(scope["type"], protos, position, aligned=True)
        proto_header = _joined(scope, b"x-forwarded-proto")
        if proto_header is None:
            return None
        protos = x_forwarded_proto_chain(proto_header)
        aligned = len(protos) > 1 and len(protos) == chain_length
        return forwarded_scheme(scope["type"], protos, position, aligned=aligned)


def _joined(scope: Scope, header: bytes) -> str | None:
    # Repeated header lines are one comma-separated list (RFC 9110 §5.3).
    values = [value for name, value in scope["headers"] if name == header]
    if not values:
        return None
    return ",".join(value.decode("latin-1") for value in values)


class ClientAddressMiddleware:
    """The same rewrite as an ASGI layer of its own (the app runs it in its edge layer)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Iterable[Network],
        header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
    ) -> None:
        self.app = app
        self.addresses = ClientAddresses(trusted_proxies, header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.addresses.rewrite(scope)
        await self.app(scope, receive, send)
