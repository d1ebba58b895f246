"""SECRET_KEY rotation: tokens name their key by `kid`; previous keys verify until removed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from app.core.config import Settings
from app.core.security.tokens import key_id, new_signing_key
from tests.conftest import AccountFactory, bearer, client_for

ME = "/api/v1/users/me"
OLD = "test-secret-key-that-is-long-enough-0123456789"


@asynccontextmanager
async def _serving(
    app_factory: Callable[..., FastAPI], key: str, previous: list[str]
) -> AsyncIterator[httpx.AsyncClient]:
    application = app_factory(
        secret_key=SecretStr(key), secret_key_previous=[SecretStr(k) for k in previous]
    )
    async with LifespanManager(application), client_for(application) as http:
        yield http


async def test_a_token_signed_before_a_rotation_works_until_its_key_is_removed(
    app_factory: Callable[..., FastAPI], make_account: AccountFactory
) -> None:
    account = await make_account()
    new = new_signing_key()

    async with _serving(app_factory, new, [OLD]) as rotated:
        assert (await rotated.get(ME, headers=bearer(account.token))).status_code == 200
    async with _serving(app_factory, new, []) as retired:
        response = await retired.get(ME, headers=bearer(account.token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_after_a_rotation_new_tokens_are_signed_with_the_new_key(
    app_factory: Callable[..., FastAPI], make_account: AccountFactory
) -> None:
    account = await make_account()
    new = new_signing_key()

    async with _serving(app_factory, new, [OLD]) as rotated:
        login = await rotated.post(
            "/api/v1/auth/token", data={"username": account.email, "password": account.password}
        )
        token = login.json()["access_token"]
        assert (await rotated.get(ME, headers=bearer(token))).status_code == 200
    assert jwt.get_unverified_header(token)["kid"] == key_id(new)
    # The old key is verify-only: nothing new carries its name.
    assert jwt.get_unverified_header(account.token)["kid"] == key_id(OLD)
    async with _serving(app_factory, new, []) as retired:
        assert (await retired.get(ME, headers=bearer(token))).status_code == 200


async def test_a_token_of_a_key_never_configured_is_401_even_with_a_known_kid(
    app_factory: Callable[..., FastAPI], make_account: AccountFactory
) -> None:
    # Someone holding a retired key cannot sign in the name of the current one.
    account = await make_account()
    claims = jwt.decode(account.token, options={"verify_signature": False})
    forged = jwt.encode(claims, new_signing_key(), algorithm="HS256", headers={"kid": key_id(OLD)})
    async with _serving(app_factory, OLD, []) as current:
        assert (await current.get(ME, headers=bearer(forged))).status_code == 401


@pytest.mark.parametrize("header", [{}, {"kid": "0123456789abcdef"}, {"kid": ""}])
async def test_a_well_signed_token_without_a_known_kid_is_401(
    client: httpx.AsyncClient, make_account: AccountFactory, header: dict[str, str]
) -> None:
    # A live session and the server's own key: only the key id is wrong.
    account = await make_account()
    claims = jwt.decode(account.token, options={"verify_signature": False})
    token = jwt.encode(claims, OLD, algorithm="HS256", headers=header or None)
    assert "kid" not in header or jwt.get_unverified_header(token)["kid"] == header["kid"]

    response = await client.get(ME, headers=bearer(token))

    assert response.status_code == 401


async def test_a_cursor_signed_before_a_rotation_is_400_not_a_crash(
    client: httpx.AsyncClient, app_factory: Callable[..., FastAPI], make_account: AccountFactory
) -> None:
    account = await make_account()
    for n in range(3):
        await client.post("/api/v1/items", json={"title": f"item {n}"}, headers=account.headers)
    page = await client.get("/api/v1/items", params={"limit": 1}, headers=account.headers)
    cursor = page.json()["next_cursor"]
    assert cursor

    async with _serving(app_factory, new_signing_key(), [OLD]) as rotated:
        response = await rotated.get(
            "/api/v1/items", params={"limit": 1, "cursor": cursor}, headers=account.headers
        )

    assert response.status_code == 400
    assert response.json()["type"].endswith("invalid-cursor")


def test_production_refuses_a_previous_key_it_would_refuse_as_the_current_one() -> None:
    values: dict[str, Any] = {
        "app_env": "production",
        "database_url": "postgresql+asyncpg://app:pw@db.internal:5432/groundwork",
        "secret_key": SecretStr(new_signing_key()),
    }
    with pytest.raises(ValidationError, match="SECRET_KEY_PREVIOUS holds a key"):
        Settings(_env_file=None, secret_key_previous=[SecretStr("too-short")], **values)
    accepted = Settings(_env_file=None, secret_key_previous=[SecretStr(OLD)], **values)
    assert accepted.is_production


def test_the_key_id_is_a_short_digest_not_the_key() -> None:
    kid = key_id(OLD)
    assert len(kid) == 16
    assert kid not in OLD
    assert key_id(OLD) == kid
    assert key_id(OLD + "x") != kid


def test_new_signing_keys_are_random_and_long_enough_for_production() -> None:
    first, second = new_signing_key(), new_signing_key()
    assert first != second
    assert len(first.encode()) >= 32
