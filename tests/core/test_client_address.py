"""The client is the direct peer, unless a trusted proxy names it; a client cannot name itself."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address, ip_network

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Request
from starlette.types import Receive, Scope, Send

from app.core.middleware.client_address import (
    ClientAddressMiddleware,
    forwarded_for_chain,
    x_forwarded_for_chain,
)
from app.core.networks import NetworkSet, parse_address
from app.main import create_app
from tests.conftest import client_for, make_settings

PROXY = "10.0.0.5"
PROXIES = "10.0.0.0/8"


async def _echo_client(scope: Scope, receive: Receive, send: Send) -> None:
    client = scope.get("client")
    body = (client[0] if client else "none").encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def seen_client(
    peer: str,
    headers: Sequence[tuple[str, str]] = (),
    *,
    trusted: str = "",
    header: str = "x-forwarded-for",
) -> str:
    """The address everything behind the middleware sees for a request from `peer`."""
    networks = [ip_network(part.strip()) for part in trusted.split(",") if part.strip()]
    app = ClientAddressMiddleware(_echo_client, trusted_proxies=networks, header=header)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=(peer, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/", headers=list(headers))
    return response.text


# --- nobody is trusted by default -------------------------------------------------


async def test_without_trusted_proxies_a_forwarded_for_header_changes_nothing() -> None:
    assert await seen_client("198.51.100.7", [("X-Forwarded-For", "1.2.3.4")]) == "198.51.100.7"


async def test_loopback_is_not_trusted_by_default() -> None:
    assert await seen_client("127.0.0.1", [("X-Forwarded-For", "1.2.3.4")]) == "127.0.0.1"


async def test_an_untrusted_peer_cannot_set_the_client_even_when_proxies_are_configured() -> None:
    seen = await seen_client("198.51.100.7", [("X-Forwarded-For", "1.2.3.4")], trusted=PROXIES)

    assert seen == "198.51.100.7"


# --- behind trusted proxies -------------------------------------------------------


async def test_a_trusted_proxy_names_the_client() -> None:
    seen = await seen_client(PROXY, [("X-Forwarded-For", "203.0.113.9")], trusted=PROXIES)

    assert seen == "203.0.113.9"


async def test_what_the_client_wrote_itself_is_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended what it saw.
    seen = await seen_client(PROXY, [("X-Forwarded-For", "1.1.1.1, 203.0.113.9")], trusted=PROXIES)

    assert seen == "203.0.113.9"


async def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop() -> None:
    seen = await seen_client(
        PROXY,
        [("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.0.0.7, 192.168.1.10")],
        trusted=f"{PROXIES}, 192.168.1.0/24",
    )

    assert seen == "203.0.113.9"


async def test_an_untrusted_hop_in_the_middle_is_the_client() -> None:
    # 172.16.0.1 is a proxy nobody listed, so it is as far as the chain can be believed.
    seen = await seen_client(
        PROXY, [("X-Forwarded-For", "203.0.113.9, 172.16.0.1, 10.0.0.7")], trusted=PROXIES
    )

    assert seen == "172.16.0.1"


async def test_repeated_header_lines_are_read_as_one_list() -> None:
    seen = await seen_client(
        PROXY,
        [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "203.0.113.9, 10.0.0.7")],
        trusted=PROXIES,
    )

    assert seen == "203.0.113.9"


async def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    seen = await seen_client(PROXY, [("X-Forwarded-For", "10.0.0.8, 10.0.0.7")], trusted=PROXIES)

    assert seen == "10.0.0.8"


async def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    assert await seen_client(PROXY, trusted=PROXIES) == PROXY


@pytest.mark.parametrize(
    "header",
    ["garbage", "203.0.113.9, not-an-ip", "203.0.113.9,", "999.1.1.1", "1.2.3.4:port", "[::1"],
)
async def test_an_unreadable_entry_stops_at_the_nearest_trusted_hop(header: str) -> None:
    seen = await seen_client(PROXY, [("X-Forwarded-For", header)], trusted=PROXIES)

    assert seen == PROXY


async def test_an_unreadable_entry_left_of_the_client_does_not_matter() -> None:
    seen = await seen_client(PROXY, [("X-Forwarded-For", "garbage, 203.0.113.9")], trusted=PROXIES)

    assert seen == "203.0.113.9"


# --- IPv6 ------------------------------------------------------------------------


async def test_an_ipv6_proxy_and_client() -> None:
    seen = await seen_client(
        "2001:db8::1", [("X-Forwarded-For", "2001:DB8:0:0::abcd")], trusted="2001:db8::/64"
    )

    assert seen == "2001:db8::abcd"


@pytest.mark.parametrize(
    ("entry", "client"),
    [
        ("[2001:db8:1::9]:4711", "2001:db8:1::9"),
        ("[2001:db8:1::9]", "2001:db8:1::9"),
        ("203.0.113.9:4711", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
    ],
)
async def test_ports_brackets_and_mapped_addresses_are_understood(entry: str, client: str) -> None:
    seen = await seen_client(PROXY, [("X-Forwarded-For", entry)], trusted=PROXIES)

    assert seen == client


async def test_an_ipv4_mapped_peer_is_matched_against_ipv4_proxies() -> None:
    seen = await seen_client(
        "::ffff:10.0.0.5", [("X-Forwarded-For", "203.0.113.9")], trusted=PROXIES
    )

    assert seen == "203.0.113.9"


def test_an_ipv6_network_never_vouches_for_an_ipv4_address() -> None:
    trusted = NetworkSet([ip_network("::/96")])

    assert ip_address("0.0.0.1") not in trusted
    assert ip_address("::1") in trusted


# --- RFC 7239 Forwarded ------------------------------------------------------------


async def test_forwarded_is_read_when_configured() -> None:
    seen = await seen_client(
        PROXY,
        [("Forwarded", 'for=1.1.1.1, for="[2001:db8::17]:4711";proto=https;by=10.0.0.5')],
        trusted=PROXIES,
        header="forwarded",
    )

    assert seen == "2001:db8::17"


async def test_forwarded_is_ignored_when_x_forwarded_for_is_the_configured_header() -> None:
    # A proxy that only appends X-Forwarded-For passes a client's own Forwarded along.
    seen = await seen_client(
        PROXY,
        [("Forwarded", "for=1.1.1.1"), ("X-Forwarded-For", "203.0.113.9")],
        trusted=PROXIES,
    )

    assert seen == "203.0.113.9"


def test_forwarded_elements_without_a_readable_for_are_unknown() -> None:
    chain = forwarded_for_chain(
        'for=unknown, for=_hidden, proto=https, for="1.2.3.4,5.6.7.8", For=192.0.2.1'
    )

    assert chain == [None, None, None, None, ip_address("192.0.2.1")]


def test_x_forwarded_for_entries_are_parsed_one_by_one() -> None:
    assert x_forwarded_for_chain(" 192.0.2.1 ,bogus, [2001:db8::1]:80") == [
        ip_address("192.0.2.1"),
        None,
        ip_address("2001:db8::1"),
    ]
    assert parse_address("fe80::1%eth0") is not None


# --- wired into the app -----------------------------------------------------------


async def test_the_app_sees_the_client_named_by_a_trusted_proxy(database_url: str) -> None:
    application = create_app(make_settings(database_url, trusted_proxies=PROXIES))

    @application.get("/edge-check/client")
    async def probe(request: Request) -> str:
        return request.client.host if request.client else "none"

    async with LifespanManager(application):
        for peer, expected in ((PROXY, "203.0.113.9"), ("198.51.100.7", "198.51.100.7")):
            async with client_for(application, peer) as http:
                response = await http.get(
                    "/edge-check/client", headers={"X-Forwarded-For": "1.1.1.1, 203.0.113.9"}
                )
            assert response.json() == expected


def test_trusted_proxies_are_read_comma_separated(database_url: str) -> None:
    settings = make_settings(database_url, trusted_proxies="10.0.0.0/8, 192.0.2.1,2001:db8::/32")

    assert settings.trusted_proxies == [
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.1/32"),
        ip_network("2001:db8::/32"),
    ]
    assert make_settings(database_url).trusted_proxies == []


def test_a_malformed_trusted_proxy_stops_start_up(database_url: str) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        make_settings(database_url, trusted_proxies="10.0.0.0/8, not-a-network")


# --- the scheme the client used -----------------------------------------------------


async def _echo_scheme(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


async def seen_scheme(
    peer: str,
    headers: Sequence[tuple[str, str]] = (),
    *,
    trusted: str = PROXIES,
    header: str = "x-forwarded-for",
) -> str:
    """The scheme everything behind the middleware sees for a plain-HTTP request from `peer`."""
    networks = [ip_network(part.strip()) for part in trusted.split(",") if part.strip()]
    app = ClientAddressMiddleware(_echo_scheme, trusted_proxies=networks, header=header)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=(peer, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/", headers=list(headers))
    return response.text


async def test_a_trusted_proxy_says_the_client_used_https() -> None:
    seen = await seen_scheme(
        PROXY, [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")]
    )

    assert seen == "https"


async def test_x_forwarded_proto_alone_from_a_trusted_proxy_is_believed() -> None:
    assert await seen_scheme(PROXY, [("X-Forwarded-Proto", "HTTPS")]) == "https"


async def test_an_untrusted_peer_cannot_set_the_scheme() -> None:
    headers = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")]

    assert await seen_scheme("198.51.100.7", headers) == "http"
    assert await seen_scheme(PROXY, headers, trusted="") == "http"


async def test_an_unknown_scheme_is_ignored() -> None:
    assert await seen_scheme(PROXY, [("X-Forwarded-Proto", "gopher")]) == "http"


async def test_a_list_of_schemes_is_read_at_the_hop_that_met_the_client() -> None:
    # The edge terminated TLS for the client, then spoke HTTP to an inner proxy.
    headers = [("X-Forwarded-For", "203.0.113.9, 10.0.0.7"), ("X-Forwarded-Proto", "https, http")]

    assert await seen_scheme(PROXY, headers) == "https"


async def test_a_scheme_list_that_does_not_line_up_is_read_from_the_nearest_proxy() -> None:
    # Anything the client wrote sits to the left; the rightmost value is the proxy's.
    headers = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https, http")]

    assert await seen_scheme(PROXY, headers) == "http"


async def test_forwarded_proto_is_taken_from_the_element_that_names_the_client() -> None:
    header = ("Forwarded", 'for=1.1.1.1;proto=http, for=203.0.113.9;proto=https, for="10.0.0.7"')

    assert await seen_scheme(PROXY, [header], header="forwarded") == "https"


async def test_forwarded_proto_from_an_untrusted_peer_is_ignored() -> None:
    header = ("Forwarded", "for=203.0.113.9;proto=https")

    assert await seen_scheme("198.51.100.7", [header], header="forwarded") == "http"


async def test_x_forwarded_proto_is_ignored_when_forwarded_is_the_configured_header() -> None:
    headers = [("Forwarded", "for=203.0.113.9"), ("X-Forwarded-Proto", "https")]

    assert await seen_scheme(PROXY, headers, header="forwarded") == "http"


async def test_redirects_keep_https_behind_a_tls_terminating_proxy(database_url: str) -> None:
    application = create_app(make_settings(database_url, trusted_proxies=PROXIES))
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}

    async with LifespanManager(application):
        async with client_for(application, PROXY) as http:
            behind_proxy = await http.get("/api/v1/items/", headers=headers)
        async with client_for(application, "198.51.100.7") as http:
            direct = await http.get("/api/v1/items/", headers=headers)

    assert behind_proxy.status_code == 307
    assert behind_proxy.headers["location"] == "https://testserver/api/v1/items"
    assert direct.headers["location"] == "http://testserver/api/v1/items"


@pytest.mark.parametrize(("proto", "scheme"), [("https", "wss"), ("http", "ws")])
async def test_a_websocket_behind_the_proxy_gets_its_scheme(proto: str, scheme: str) -> None:
    seen: list[str] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["scheme"])

    app = ClientAddressMiddleware(record, trusted_proxies=[ip_network(PROXIES)])
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "client": (PROXY, 5555),
        "headers": [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", proto.encode())],
    }
    await app(scope, None, None)  # type: ignore[arg-type]

    assert seen == [scheme]
