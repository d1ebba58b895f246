"""X-Request-ID: well-formed ids are kept, anything else is replaced by a fresh one."""

from __future__ import annotations

import re

import httpx
import pytest

VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
LIVE = "/health/live"


def assert_fresh(request_id: str) -> None:
    assert VALID_REQUEST_ID.fullmatch(request_id), request_id


@pytest.mark.parametrize(
    "incoming",
    ["abc.DEF_123-x", "a", "A" * 128, "0123456789abcdef0123456789abcdef"],
    ids=["mixed", "one-char", "128-chars", "hex"],
)
async def test_well_formed_request_id_is_echoed(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get(LIVE, headers={"X-Request-ID": incoming})

    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == incoming


async def test_missing_request_id_gets_a_fresh_one_per_request(client: httpx.AsyncClient) -> None:
    first = await client.get(LIVE)
    second = await client.get(LIVE)

    assert_fresh(first.headers["X-Request-ID"])
    assert_fresh(second.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "incoming",
    ["A" * 129, "has space", "<script>alert(1)</script>", "", "semi;colon", "slash/id"],
    ids=["129-chars", "space", "script", "empty", "semicolon", "slash"],
)
async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get(LIVE, headers={"X-Request-ID": incoming})

    assert response.status_code == 200
    replaced = response.headers["X-Request-ID"]
    assert replaced != incoming
    assert_fresh(replaced)
    if incoming:
        assert incoming not in response.text


async def test_replaced_request_ids_differ_between_requests(client: httpx.AsyncClient) -> None:
    bad = {"X-Request-ID": "not valid!"}

    first = await client.get(LIVE, headers=bad)
    second = await client.get(LIVE, headers=bad)

    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.parametrize("incoming", [None, "client-chosen.id_42"], ids=["generated", "echoed"])
async def test_not_found_problem_carries_the_response_request_id(
    client: httpx.AsyncClient, incoming: str | None
) -> None:
    headers = {"X-Request-ID": incoming} if incoming else {}

    response = await client.get("/no/such/route", headers=headers)

    assert response.status_code == 404
    assert response.json()["request_id"] == response.headers["X-Request-ID"]
    if incoming:
        assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", [None, "client-chosen.id_42"], ids=["generated", "echoed"])
async def test_validation_problem_carries_the_response_request_id(
    client: httpx.AsyncClient, incoming: str | None
) -> None:
    headers = {"X-Request-ID": incoming} if incoming else {}

    response = await client.post("/api/v1/auth/register", json={}, headers=headers)

    assert response.status_code == 422
    assert response.json()["request_id"] == response.headers["X-Request-ID"]
    if incoming:
        assert response.headers["X-Request-ID"] == incoming


async def test_replaced_request_id_is_the_one_in_the_problem_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/no/such/route", headers={"X-Request-ID": "bad id"})

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] != "bad id"
    assert response.json()["request_id"] == response.headers["X-Request-ID"]
