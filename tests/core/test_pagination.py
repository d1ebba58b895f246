"""Cursors are opaque and tamper-evident: anything forged is InvalidCursor, never a crash."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from app.core.errors import InvalidCursor, problem_type
from app.core.pagination import CursorCodec, Position
from tests.conftest import AccountFactory

SECRET = b"cursor-test-secret-that-is-long-enough-0123"
POSITION = Position(datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC), uuid.uuid4())


@pytest.fixture
def codec() -> CursorCodec:
    return CursorCodec(SECRET)


def _flip(cursor: str, index: int) -> str:
    replacement = "B" if cursor[index] == "A" else "A"
    return cursor[:index] + replacement + cursor[index + 1 :]


@pytest.mark.parametrize(
    "position",
    [
        POSITION,
        Position(datetime(2001, 1, 1, tzinfo=timezone(timedelta(hours=-5))), uuid.uuid4()),
        Position(datetime(2030, 12, 31, 23, 59, 59), uuid.UUID(int=0)),
    ],
    ids=["utc-microseconds", "offset", "naive-nil-uuid"],
)
def test_cursor_round_trips_its_position(codec: CursorCodec, position: Position) -> None:
    cursor = codec.encode(position)

    assert codec.decode(cursor) == position
    assert CursorCodec(SECRET).decode(cursor) == position


def test_cursor_is_url_safe_and_opaque(codec: CursorCodec) -> None:
    cursor = codec.encode(POSITION)

    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert POSITION.id.hex not in cursor


def test_cursor_signed_with_another_secret_is_invalid(codec: CursorCodec) -> None:
    foreign = CursorCodec(b"some-other-secret-that-is-long-enough-9876").encode(POSITION)

    with pytest.raises(InvalidCursor):
        codec.decode(foreign)


@pytest.mark.parametrize("where", ["first", "signature", "payload", "second-last"])
def test_cursor_with_one_character_flipped_is_invalid(codec: CursorCodec, where: str) -> None:
    cursor = codec.encode(POSITION)
    index = {"first": 0, "signature": 10, "payload": len(cursor) // 2, "second-last": -2}[where]

    tampered = _flip(cursor, index % len(cursor))

    assert tampered != cursor
    with pytest.raises(InvalidCursor):
        codec.decode(tampered)


def test_cursor_with_a_swapped_payload_is_invalid(codec: CursorCodec) -> None:
    raw = base64.urlsafe_b64decode(codec.encode(POSITION) + "==")
    other = base64.urlsafe_b64decode(
        codec.encode(Position(POSITION.created_at, uuid.uuid4())) + "=="
    )
    spliced = base64.urlsafe_b64encode(raw[:16] + other[16:]).rstrip(b"=").decode()

    with pytest.raises(InvalidCursor):
        codec.decode(spliced)


@pytest.mark.parametrize(
    "garbage",
    [
        base64.urlsafe_b64encode(os.urandom(64)).decode(),
        base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode(),
        base64.urlsafe_b64encode(os.urandom(7)).decode(),
        "!!!not a cursor$$$",
        "%%%%",
        "=",
        "a",
        "ünïcödé-cursor",
        "\x00\x01\x02",
        "",
        "A" * 10_240,
        "x" * 10_000 + "==",
    ],
    ids=[
        "random-b64",
        "random-b64-signature-length",
        "random-b64-short",
        "punctuation",
        "percent",
        "padding-only",
        "one-char",
        "non-ascii",
        "control-chars",
        "empty",
        "10kB",
        "10kB-padded",
    ],
)
def test_garbage_cursor_is_invalid(codec: CursorCodec, garbage: str) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(garbage)


async def test_forged_cursor_over_http_is_a_400_problem(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.get(
        "/api/v1/items", params={"cursor": "not-a-real-cursor!"}, headers=account.headers
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == problem_type("invalid-cursor")
    assert body["status"] == 400
    assert body["request_id"] == response.headers["X-Request-ID"]


async def test_cursor_signed_with_another_secret_over_http_is_a_400_problem(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    foreign = CursorCodec(b"an-attacker-guessed-secret-0123456789").encode(POSITION)

    response = await client.get(
        "/api/v1/items", params={"cursor": foreign}, headers=account.headers
    )

    assert response.status_code == 400
    assert response.json()["type"] == problem_type("invalid-cursor")


async def test_cursor_issued_by_the_server_is_accepted_back(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    for number in range(3):
        created = await client.post(
            "/api/v1/items", json={"title": f"item {number}"}, headers=account.headers
        )
        assert created.status_code == 201, created.text

    first = await client.get("/api/v1/items", params={"limit": 2}, headers=account.headers)
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await client.get(
        "/api/v1/items", params={"limit": 2, "cursor": cursor}, headers=account.headers
    )

    assert second.status_code == 200, second.text
    first_ids = {item["id"] for item in first.json()["items"]}
    second_ids = {item["id"] for item in second.json()["items"]}
    assert len(first_ids) == 2
    assert len(second_ids) == 1
    assert not first_ids & second_ids
    tampered = _flip(cursor, len(cursor) // 2)
    rejected = await client.get(
        "/api/v1/items", params={"limit": 2, "cursor": tampered}, headers=account.headers
    )
    assert rejected.status_code == 400
    assert rejected.json()["type"] == problem_type("invalid-cursor")
