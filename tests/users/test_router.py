from __future__ import annotations

import httpx

from tests.conftest import AccountFactory


async def test_me_returns_the_profile_without_secrets(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.get("/api/v1/users/me", headers=account.headers)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "email", "full_name", "is_active", "roles", "created_at"}
    assert body["id"] == str(account.id)
    assert body["email"] == account.email
    assert body["roles"] == ["member"]
    assert account.password not in response.text


async def test_me_without_a_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
