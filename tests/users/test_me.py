"""The caller's own account: profile and password (`/users/me*`).

Its export and deletion are in tests/privacy/.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.core.resources import Resources
from app.identity.models import User
from tests.conftest import (
    PASSWORD,
    AccountFactory,
    bearer,
    login_status,
    refresh_status,
    start_session,
)

ME = "/api/v1/users/me"
PASSWORD_CHANGE = "/api/v1/users/me/password"
ITEMS = "/api/v1/items"
USERS = "/api/v1/users"
NEW_PASSWORD = "a-brand-new-passphrase-42"


# --- reading and editing the profile ----------------------------------------------


async def test_me_returns_the_profile_and_never_a_password_hash(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()

    response = await client.get(ME, headers=account.headers)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "email", "full_name", "is_active", "roles", "created_at"}
    assert body["id"] == str(account.id)
    assert body["email"] == account.email
    assert body["full_name"] is None
    assert body["is_active"] is True
    assert body["roles"] == ["member"]
    async with resources.sessionmaker() as session:
        user = await session.get(User, account.id)
    assert user is not None
    assert user.password_hash not in response.text
    assert "argon2" not in response.text
    assert account.password not in response.text


async def test_patch_me_changes_the_full_name(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.patch(ME, json={"full_name": "Ada Lovelace"}, headers=account.headers)

    assert response.status_code == 200
    assert response.json()["full_name"] == "Ada Lovelace"
    assert (await client.get(ME, headers=account.headers)).json()["full_name"] == "Ada Lovelace"


@pytest.mark.parametrize(
    "extra",
    [
        {"roles": ["admin"]},
        {"is_active": False},
        {"email": "someone-else@example.com"},
        {"id": str(uuid.uuid4())},
        {"password_hash": "$argon2id$v=19$forged"},
    ],
)
async def test_patch_me_refuses_fields_a_user_may_not_set(
    client: httpx.AsyncClient, make_account: AccountFactory, extra: dict[str, object]
) -> None:
    account = await make_account()
    before = (await client.get(ME, headers=account.headers)).json()

    response = await client.patch(
        ME, json={"full_name": "Mallory", **extra}, headers=account.headers
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    (field,) = extra
    assert field in {str(part) for error in response.json()["errors"] for part in error["loc"]}
    # Nothing of the request was applied, not even the allowed part.
    assert (await client.get(ME, headers=account.headers)).json() == before
    assert (await client.get(USERS, headers=account.headers)).status_code == 403
    assert await login_status(client, account.email, PASSWORD) == 200


# --- changing the password -----------------------------------------------------------


async def test_password_change_with_a_wrong_current_password_is_400_and_changes_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    other = await start_session(client, account.email)

    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": "not-the-password", "new_password": NEW_PASSWORD},
        headers=account.headers,
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert await login_status(client, account.email, PASSWORD) == 200
    assert await login_status(client, account.email, NEW_PASSWORD) == 401
    # A failed attempt ends no session.
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 200
    assert await refresh_status(client, other["refresh_token"]) == 200


async def test_a_changed_password_logs_in_and_the_old_one_no_longer_does(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )

    assert response.status_code == 204
    assert response.content == b""
    assert await login_status(client, account.email, NEW_PASSWORD) == 200
    assert await login_status(client, account.email, PASSWORD) == 401


async def test_a_password_change_ends_every_other_session_but_not_the_callers(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    caller = await start_session(client, account.email)
    laptop = await start_session(client, account.email)
    phone = await start_session(client, account.email)

    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(caller["access_token"]),
    )

    assert response.status_code == 204
    for other in (laptop, phone, {"access_token": account.token}):
        revoked = await client.get(ME, headers=bearer(other["access_token"]))
        assert revoked.status_code == 401
        assert revoked.headers["www-authenticate"] == "Bearer"
    for other in (laptop, phone):
        assert await refresh_status(client, other["refresh_token"]) == 401
    assert (await client.get(ME, headers=bearer(caller["access_token"]))).status_code == 200
    assert await refresh_status(client, caller["refresh_token"]) == 200


@pytest.mark.parametrize(
    "new_password", ["short", "1234567", "password", "Password123", "x" * 129, ""]
)
async def test_a_weak_new_password_is_422_and_the_password_is_unchanged(
    client: httpx.AsyncClient, make_account: AccountFactory, new_password: str
) -> None:
    account = await make_account()

    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=account.headers,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert await login_status(client, account.email, PASSWORD) == 200


@pytest.mark.parametrize("part", ["email", "local_part"])
async def test_a_new_password_equal_to_the_email_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, part: str
) -> None:
    account = await make_account(f"long-enough-name-{uuid.uuid4().hex[:8]}@example.com")
    new_password = account.email if part == "email" else account.email.split("@")[0]

    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=account.headers,
    )

    assert response.status_code == 422
    assert await login_status(client, account.email, PASSWORD) == 200
