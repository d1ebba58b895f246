"""Login throttling: repeated failures lock an account, or a client, out for a while."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.resources import Resources
from tests.conftest import PASSWORD, AccountFactory, client_for, register

TOKEN = "/api/v1/auth/token"


async def attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password})


async def test_five_failures_lock_the_account_with_429_and_retry_after(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    for _ in range(5):
        assert (await attempt(client, account.email, "wrong-password")).status_code == 401

    locked = await attempt(client, account.email, PASSWORD)

    # Even the right password is refused until the window passes.
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert locked.json()["type"] == "urn:groundwork:problem:rate-limited"
    async with resources.sessionmaker() as session:
        failures = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "auth.login_failed")
            )
        ).all()
    assert len(failures) == 5


async def test_the_lock_is_per_account(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    locked, other = await make_account(), await make_account()
    for _ in range(5):
        await attempt(client, locked.email, "wrong-password")

    assert (await attempt(client, other.email, PASSWORD)).status_code == 200
    assert (await attempt(client, locked.email.upper(), PASSWORD)).status_code == 429


async def test_a_success_resets_the_account_counter(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    for _ in range(4):
        await attempt(client, account.email, "wrong-password")
    assert (await attempt(client, account.email, PASSWORD)).status_code == 200

    for _ in range(4):
        assert (await attempt(client, account.email, "wrong-password")).status_code == 401
    assert (await attempt(client, account.email, PASSWORD)).status_code == 200


async def test_unknown_emails_lock_out_the_same_way(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (await attempt(client, "ghost@example.com", "whatever-it-is")).status_code == 401

    # The same answer as for a real account: a lockout does not reveal existence.
    assert (await attempt(client, "ghost@example.com", "whatever-it-is")).status_code == 429


@pytest.mark.parametrize(
    "addresses",
    [
        ["203.0.113.9"] * 4,
        # IPv6: one /64 is one client, whichever of its addresses it uses.
        ["2001:db8:5::1", "2001:db8:5::2", "2001:db8:5:0:1::3", "2001:db8:5::4"],
    ],
)
async def test_many_failures_from_one_client_lock_that_client_out(
    app_factory: Callable[..., FastAPI], addresses: list[str]
) -> None:
    app = app_factory(login_lockout_client="3/15 minutes", rate_limit_login="1000/minute")
    async with LifespanManager(app), client_for(app) as bystander:
        await register(bystander, "victim@example.com")
        for n, address in enumerate(addresses[:3]):
            async with client_for(app, address) as attacker:
                await attempt(attacker, f"target{n}@example.com", "wrong-password")

        async with client_for(app, addresses[3]) as attacker:
            spraying = await attempt(attacker, "victim@example.com", PASSWORD)
            elsewhere = await attempt(bystander, "victim@example.com", PASSWORD)

    assert spraying.status_code == 429
    assert elsewhere.status_code == 200
