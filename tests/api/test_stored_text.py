"""Client text: a NUL is a client error on every database, and a name is never blank.

PostgreSQL cannot store or compare U+0000 and fails the whole statement;
SQLite stores it. Either way the API answers the same: 422 where the text
would be kept or looked up, 401 for a login no account can match. Titles and
names are kept as sent, but one made only of whitespace is refused.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, AccountFactory

NUL_TEXT = "before\x00after"


def assert_refused_text(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert errors
    assert all(field in error["loc"] for error in errors), errors


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/items", {"title": NUL_TEXT}, "title"),
        ("POST", "/api/v1/items", {"title": "ok", "description": NUL_TEXT}, "description"),
        ("PATCH", "/api/v1/users/me", {"full_name": NUL_TEXT}, "full_name"),
    ],
)
async def test_text_a_signed_in_user_sends_with_a_nul_is_refused(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    account = await make_account()

    response = await client.request(method, path, json=body, headers=account.headers)

    assert_refused_text(response, field)


async def test_an_item_cannot_be_renamed_to_text_with_a_nul(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    created = await client.post("/api/v1/items", json={"title": "ok"}, headers=account.headers)
    assert created.status_code == 201, created.text

    response = await client.patch(
        created.headers["Location"],
        json={"title": NUL_TEXT},
        headers={**account.headers, "If-Match": created.headers["ETag"]},
    )

    assert_refused_text(response, "title")


async def test_registration_with_a_nul_in_the_name_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "nul@example.com", "password": PASSWORD, "full_name": NUL_TEXT},
    )

    assert_refused_text(response, "full_name")


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_a_role_name_with_a_nul_is_refused(
    client: httpx.AsyncClient, make_account: AccountFactory, method: str
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.request(
        method,
        "/api/v1/roles/ed%00itor",
        json={"permissions": []} if method == "PATCH" else None,
        headers=admin.headers,
    )

    assert_refused_text(response, "name")


async def test_a_login_with_a_nul_in_the_email_is_just_a_failed_login(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.post(
        "/api/v1/auth/token",
        data={"username": account.email.replace("@", "\x00@"), "password": account.password},
    )

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("blank", [" ", "\t\n", "\u3000", "\u00a0 \u2003"])
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [("POST", "/api/v1/items", "title"), ("PATCH", "/api/v1/users/me", "full_name")],
)
async def test_a_title_or_name_of_only_whitespace_is_refused(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    method: str,
    path: str,
    field: str,
    blank: str,
) -> None:
    account = await make_account()

    response = await client.request(method, path, json={field: blank}, headers=account.headers)

    assert_refused_text(response, field)


async def test_a_title_is_kept_as_sent(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    created = await client.post(
        "/api/v1/items", json={"title": "  spaced out  "}, headers=account.headers
    )

    assert created.status_code == 201, created.text
    assert created.json()["title"] == "  spaced out  "
