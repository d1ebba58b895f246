"""What expires does so at the second it should, on the app's clock: moved, never waited for."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import jwt
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.mail import MemoryMailer
from app.core.resources import Resources
from app.core.security.tokens import ALGORITHM, key_id
from tests.conftest import PASSWORD, AccountFactory, run_jobs
from tests.helpers import SettableClock, bearer, client_for, login_status

ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"
RESET_REQUEST = "/api/v1/auth/password-reset/request"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
NEW_PASSWORD = "a-brand-new-passphrase"


def stopped_on_a_whole_second(clock: SettableClock) -> datetime:
    """Token times are whole seconds: stopping on one makes "one second before" exact."""
    return clock.stop(datetime.fromtimestamp(int(clock.now().timestamp()), UTC))


def resigned(resources: Resources, token: str, **changes: object) -> str:
    """The token with `changes` to its claims, signed with the server's own key."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    key = resources.settings.secret_key.get_secret_value()
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


async def me(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(ME, headers=bearer(token))).status_code


async def test_an_access_token_serves_until_its_last_second_and_not_at_exp(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    clock: SettableClock,
) -> None:
    stopped_on_a_whole_second(clock)
    account = await make_account()
    ttl = resources.settings.access_token_ttl_seconds

    clock.advance(ttl - 1)
    assert await me(client, account.token) == 200
    clock.advance(1)
    assert await me(client, account.token) == 401


async def test_a_token_issued_after_now_is_not_valid_yet(
    client: httpx.AsyncClient, make_account: AccountFactory, clock: SettableClock
) -> None:
    stopped_on_a_whole_second(clock)
    account = await make_account()

    clock.advance(-1)
    assert await me(client, account.token) == 401
    clock.advance(1)
    assert await me(client, account.token) == 200


async def test_a_not_before_claim_is_honoured_to_the_second(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    clock: SettableClock,
) -> None:
    now = int(stopped_on_a_whole_second(clock).timestamp())
    account = await make_account()
    later = resigned(resources, account.token, nbf=now + 60)

    assert await me(client, later) == 401
    assert await me(client, resigned(resources, account.token, nbf=now)) == 200
    clock.advance(60)
    assert await me(client, later) == 200


async def test_a_login_session_refreshes_until_its_last_second_and_not_after(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    clock: SettableClock,
) -> None:
    stopped_on_a_whole_second(clock)
    account = await make_account()
    ttl = resources.settings.refresh_token_ttl_seconds

    clock.advance(ttl - 1)
    refreshed = await client.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    # A refresh rotates the token; it does not extend the session.
    clock.advance(1)
    again = await client.post(REFRESH, json={"refresh_token": refreshed.json()["refresh_token"]})
    assert again.status_code == 401
    assert await me(client, refreshed.json()["access_token"]) == 401


async def test_a_reset_token_works_until_its_last_second_and_not_at_expiry(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    clock: SettableClock,
) -> None:
    stopped_on_a_whole_second(clock)
    account = await make_account()
    ttl = resources.settings.password_reset_ttl_seconds
    mailer = resources.mailer
    assert isinstance(mailer, MemoryMailer)

    async def reset_token() -> str:
        response = await client.post(RESET_REQUEST, json={"email": account.email})
        assert response.status_code == 202, response.text
        assert await run_jobs(resources) == 1
        found = re.search(r"Reset token: (\S+)", mailer.outbox[-1].body)
        assert found is not None
        return found.group(1)

    in_time = await reset_token()
    clock.advance(ttl - 1)
    confirmed = await client.post(
        RESET_CONFIRM, json={"token": in_time, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204, confirmed.text

    too_late = await reset_token()
    clock.advance(ttl)
    refused = await client.post(RESET_CONFIRM, json={"token": too_late, "new_password": PASSWORD})
    assert refused.status_code == 400


async def test_an_account_lockout_lifts_when_its_window_has_passed(
    app_factory: Callable[..., FastAPI], make_account: AccountFactory, clock: SettableClock
) -> None:
    # Counted in this process (no Redis), where the app's clock keeps the window.
    app = app_factory(redis_url=None, login_lockout_account="5/15 minutes")
    account = await make_account()
    clock.stop()

    async with LifespanManager(app), client_for(app) as client:
        failures = [await login_status(client, account.email, "wrong") for _ in range(5)]
        assert failures == [401] * 5
        clock.advance(15 * 60 - 1)
        assert await login_status(client, account.email) == 429
        clock.advance(1)
        assert await login_status(client, account.email) == 200
