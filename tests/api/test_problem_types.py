"""docs/errors.md and the server agree: every `type` listed there is answered, and no other.

Each documented type is provoked here, the way a client would meet it, in one
module that does not depend on which other tests run or in what order. The
other direction is read from the source: every slug the app can put in a
problem must have its row.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from app.core.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_PREFIX
from tests.conftest import AccountFactory, client_for, free_port

ROOT = Path(__file__).resolve().parents[2]
ERRORS_MD = ROOT / "docs" / "errors.md"
# Only guards against a hang failing the run forever; not a timing assertion.
HANG_GUARD_SECONDS = 60
# The family row: any other status, e.g. `http-418`.
FAMILY = "http-<status>"
ITEMS = "/api/v1/items"
# What docs/errors.md promises about headers, by status.
HEADERS_BY_STATUS = {401: "WWW-Authenticate", 405: "Allow", 429: "Retry-After"}


def documented_types() -> dict[str, str]:
    """slug -> status column, from the table under "## Types"."""
    text = ERRORS_MD.read_text(encoding="utf-8")
    table = text.split("## Types", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", table, flags=re.MULTILINE)
    return {slug: status.strip() for slug, status in rows}


@dataclass
class Caller:
    client: httpx.AsyncClient
    make_account: AccountFactory
    app_factory: Callable[..., FastAPI]

    async def on(
        self, request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]], **settings: object
    ) -> httpx.Response:
        """The answer of an app built with these settings."""
        app = self.app_factory(**settings)
        async with LifespanManager(app), client_for(app) as client:
            return await request(client)


Provoke = Callable[[Caller], Awaitable[httpx.Response]]


async def bad_request(c: Caller) -> httpx.Response:
    account = await c.make_account()
    return await c.client.post(
        "/api/v1/users/me/password",
        json={"current_password": "not-the-password", "new_password": "another-long-passphrase"},
        headers=account.headers,
    )


async def invalid_cursor(c: Caller) -> httpx.Response:
    account = await c.make_account()
    return await c.client.get(ITEMS, params={"cursor": "made-up"}, headers=account.headers)


async def invalid_token(c: Caller) -> httpx.Response:
    return await c.client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": "no-such-token", "new_password": "another-long-passphrase"},
    )


async def unauthorized(c: Caller) -> httpx.Response:
    return await c.client.get("/api/v1/users/me")


async def invalid_credentials(c: Caller) -> httpx.Response:
    account = await c.make_account()
    return await c.client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": "wrong-password"}
    )


async def forbidden(c: Caller) -> httpx.Response:
    member = await c.make_account()
    return await c.client.get("/api/v1/users", headers=member.headers)


async def not_found(c: Caller) -> httpx.Response:
    account = await c.make_account()
    return await c.client.get(f"{ITEMS}/{uuid.uuid4()}", headers=account.headers)


async def method_not_allowed(c: Caller) -> httpx.Response:
    return await c.client.delete("/health/live")


async def conflict(c: Caller) -> httpx.Response:
    account = await c.make_account()
    return await c.client.post(
        "/api/v1/auth/register", json={"email": account.email, "password": account.password}
    )


async def precondition_failed(c: Caller) -> httpx.Response:
    account = await c.make_account()
    item = await c.client.post(ITEMS, json={"title": "tagged"}, headers=account.headers)
    return await c.client.patch(
        item.headers["Location"],
        json={"title": "changed"},
        headers={**account.headers, "If-Match": '"not-the-tag"'},
    )


async def request_timeout(c: Caller) -> httpx.Response:
    never = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b'{"email": '
        await never.wait()

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/api/v1/auth/register",
            content=stalled(),
            headers={"Content-Type": "application/json"},
        )

    return await c.on(send, request_timeout_seconds=0.2)


async def payload_too_large(c: Caller) -> httpx.Response:
    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/api/v1/auth/register",
            content=b" " * 2048,
            headers={"Content-Type": "application/json"},
        )

    return await c.on(send, max_body_bytes=1024)


async def unsupported_media_type(c: Caller) -> httpx.Response:
    return await c.client.post(
        "/api/v1/auth/token", json={"username": "a@example.com", "password": "x"}
    )


async def validation_error(c: Caller) -> httpx.Response:
    return await c.client.post("/api/v1/auth/register", json={"email": "not-an-email"})


async def unprocessable(c: Caller) -> httpx.Response:
    admin = await c.make_account(roles=("admin",))
    member = await c.make_account()
    return await c.client.patch(
        f"/api/v1/users/{member.id}", json={"roles": ["no-such-role"]}, headers=admin.headers
    )


async def idempotency_key_reused(c: Caller) -> httpx.Response:
    account = await c.make_account()
    headers = {**account.headers, "Idempotency-Key": "one-key"}
    await c.client.post(ITEMS, json={"title": "first"}, headers=headers)
    return await c.client.post(ITEMS, json={"title": "second"}, headers=headers)


async def rate_limited(c: Caller) -> httpx.Response:
    async def send(client: httpx.AsyncClient) -> httpx.Response:
        form = {"username": "nobody@example.com", "password": "wrong-password"}
        await client.post("/api/v1/auth/token", data=form)
        return await client.post("/api/v1/auth/token", data=form)

    return await c.on(send, rate_limit_login="1/minute")


async def internal_error(c: Caller) -> httpx.Response:
    app = c.app_factory()

    @app.get("/problem-check/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    async with LifespanManager(app), client_for(app) as client:
        return await client.get("/problem-check/crash")


async def service_unavailable(c: Caller) -> httpx.Response:
    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/health/ready")

    # Nobody listens on a fresh free port: every connection is refused.
    nowhere = f"postgresql+asyncpg://app:pw@127.0.0.1:{free_port()}/groundwork"
    return await c.on(send, database_url=nowhere)


async def gateway_timeout(c: Caller) -> httpx.Response:
    app = c.app_factory(request_timeout_seconds=0.2)
    never = asyncio.Event()

    @app.get("/problem-check/slow")
    async def slow() -> None:
        await never.wait()

    async with LifespanManager(app), client_for(app) as client:
        return await client.get("/problem-check/slow")


async def other_status(c: Caller) -> httpx.Response:
    app = c.app_factory()

    @app.get("/problem-check/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418)

    async with LifespanManager(app), client_for(app) as client:
        return await client.get("/problem-check/teapot")


PROVOKE: dict[str, Provoke] = {
    "bad-request": bad_request,
    "invalid-cursor": invalid_cursor,
    "invalid-token": invalid_token,
    "unauthorized": unauthorized,
    "invalid-credentials": invalid_credentials,
    "forbidden": forbidden,
    "not-found": not_found,
    "method-not-allowed": method_not_allowed,
    "conflict": conflict,
    "precondition-failed": precondition_failed,
    "request-timeout": request_timeout,
    "payload-too-large": payload_too_large,
    "unsupported-media-type": unsupported_media_type,
    "validation-error": validation_error,
    "unprocessable": unprocessable,
    "idempotency-key-reused": idempotency_key_reused,
    "rate-limited": rate_limited,
    "internal-error": internal_error,
    "service-unavailable": service_unavailable,
    "gateway-timeout": gateway_timeout,
    FAMILY: other_status,
}


def test_each_documented_type_has_a_way_to_provoke_it_here() -> None:
    assert sorted(PROVOKE) == sorted(documented_types())


@pytest.mark.parametrize("slug", sorted(documented_types()))
async def test_the_server_answers_each_documented_type(
    slug: str,
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    app_factory: Callable[..., FastAPI],
) -> None:
    provoke = PROVOKE[slug]

    async with asyncio.timeout(HANG_GUARD_SECONDS):
        response = await provoke(Caller(client, make_account, app_factory))

    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, response.text
    body = response.json()
    status = documented_types()[slug]
    if slug == FAMILY:
        assert body["type"] == f"{PROBLEM_TYPE_PREFIX}http-{response.status_code}"
        assert status == "that status"
    else:
        assert body["type"] == PROBLEM_TYPE_PREFIX + slug, body
        assert str(response.status_code) == status
    assert body["status"] == response.status_code
    if response.status_code in HEADERS_BY_STATUS:
        assert HEADERS_BY_STATUS[response.status_code] in response.headers
    if response.status_code == 503 and body["instance"].startswith("/api/"):
        assert "Retry-After" in response.headers


def slugs_in_the_source() -> set[str]:
    """Every slug the app's code can put in a problem's `type`."""
    found: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        found |= set(re.findall(r'\bslug\s*=\s*"([a-z0-9-]+)"', path.read_text(encoding="utf-8")))
    return found


def test_every_type_the_source_can_produce_is_documented() -> None:
    slugs = slugs_in_the_source()

    # The scan reads real code: the domain's errors and the handlers' own slugs.
    assert {"not-found", "validation-error", "internal-error"} <= slugs
    assert sorted(slugs - set(documented_types())) == []
