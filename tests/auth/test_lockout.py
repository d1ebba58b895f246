"""Login throttling: repeated failures lock an account, or a client, out for a while."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.core.resources import Resources
from app.identity.models import EMAIL_MAX_LENGTH
from tests.conftest import PASSWORD, AccountFactory, client_for, register
from tests.helpers import attempt_login

TOKEN = "/api/v1/auth/token"
PASSWORD_CHANGE = "/api/v1/users/me/password"


async def test_five_failures_lock_the_account_with_429_and_retry_after(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    for _ in range(5):
        assert (await attempt_login(client, account.email, "wrong-password")).status_code == 401

    locked = await attempt_login(client, account.email, PASSWORD)

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
        await attempt_login(client, locked.email, "wrong-password")

    assert (await attempt_login(client, other.email, PASSWORD)).status_code == 200
    assert (await attempt_login(client, locked.email.upper(), PASSWORD)).status_code == 429


async def test_a_success_resets_the_account_counter(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    for _ in range(4):
        await attempt_login(client, account.email, "wrong-password")
    assert (await attempt_login(client, account.email, PASSWORD)).status_code == 200

    for _ in range(4):
        assert (await attempt_login(client, account.email, "wrong-password")).status_code == 401
    assert (await attempt_login(client, account.email, PASSWORD)).status_code == 200


async def test_unknown_emails_lock_out_the_same_way(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        assert (
            await attempt_login(client, "ghost@example.com", "whatever-it-is")
        ).status_code == 401

    # The same answer as for a real account: a lockout does not reveal existence.
    assert (await attempt_login(client, "ghost@example.com", "whatever-it-is")).status_code == 429


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
                await attempt_login(attacker, f"target{n}@example.com", "wrong-password")

        async with client_for(app, addresses[3]) as attacker:
            spraying = await attempt_login(attacker, "victim@example.com", PASSWORD)
            elsewhere = await attempt_login(bystander, "victim@example.com", PASSWORD)

    assert spraying.status_code == 429
    assert elsewhere.status_code == 200


async def test_concurrent_wrong_guesses_at_one_account_get_at_most_five_401s(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    # Every guess is in flight before any has been checked.
    answers = await asyncio.gather(
        *(attempt_login(client, account.email, f"wrong-password-{n}") for n in range(16))
    )
    right = await attempt_login(client, account.email, PASSWORD)

    codes = Counter(answer.status_code for answer in answers)
    assert set(codes) <= {401, 429}, codes
    assert codes[401] <= 5, codes
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) >= 1


async def test_successful_logins_from_one_address_are_not_capped_by_the_client_lockout(
    app_factory: Callable[..., FastAPI],
) -> None:
    # An office behind one address: the client lockout counts failures, not sign-ins.
    app = app_factory(login_lockout_client="3/15 minutes", rate_limit_login="1000/minute")
    async with LifespanManager(app), client_for(app, "198.51.100.7") as office:
        emails = [f"colleague{n}@example.com" for n in range(4)]
        for email in emails:
            await register(office, email)
        sign_ins = [await attempt_login(office, email, PASSWORD) for email in emails * 2]
        await attempt_login(office, "colleague0@example.com", "wrong-password")
        after_one_failure = await attempt_login(office, "colleague1@example.com", PASSWORD)

    assert [answer.status_code for answer in sign_ins] == [200] * 8
    assert after_one_failure.status_code == 200


async def test_one_failure_still_counts_against_the_client_after_successes(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory(login_lockout_client="3/15 minutes", rate_limit_login="1000/minute")
    async with LifespanManager(app), client_for(app, "198.51.100.8") as client:
        await register(client, "someone@example.com")
        for n in range(3):
            assert (await attempt_login(client, "someone@example.com", PASSWORD)).status_code == 200
            assert (
                await attempt_login(client, f"other{n}@example.com", "guess")
            ).status_code == 401

        locked = await attempt_login(client, "someone@example.com", PASSWORD)

    assert locked.status_code == 429


@pytest.mark.parametrize("length", [EMAIL_MAX_LENGTH + 1, 512 * 1024])
async def test_a_username_longer_than_any_email_is_refused_unread(
    client: httpx.AsyncClient, length: int
) -> None:
    answer = await attempt_login(client, "a" * (length - len("@example.com")) + "@example.com", "x")

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    [issue] = answer.json()["errors"]
    assert issue["loc"] == ["body", "username"]


async def test_the_longest_username_an_email_can_be_is_read(client: httpx.AsyncClient) -> None:
    username = "a" * (EMAIL_MAX_LENGTH - len("@example.com")) + "@example.com"

    assert (await attempt_login(client, username, "wrong-password")).status_code == 401


async def test_the_openapi_document_states_the_username_limit(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"][TOKEN]["post"]["requestBody"]["content"]
    form = body["application/x-www-form-urlencoded"]["schema"]
    if "$ref" in form:
        form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]

    assert form["properties"]["username"]["maxLength"] == EMAIL_MAX_LENGTH


async def test_lockout_keys_in_redis_do_not_grow_with_the_username(
    redis_client: Redis | None, client: httpx.AsyncClient
) -> None:
    if redis_client is None:
        pytest.skip("needs Redis: TEST_REDIS_URL is unset or does not answer")
    short, longest = "s@example.com", "a" * (EMAIL_MAX_LENGTH - 12) + "@example.com"
    for username in (short, longest):
        assert (await attempt_login(client, username, "wrong-password")).status_code == 401

    keys = [key async for key in redis_client.scan_iter(match="*lockout*")]

    assert keys
    assert all(short.encode() not in key and longest.encode() not in key for key in keys)
    assert len({len(key) for key in keys if b"account" in key}) == 1


# --- the current password on /users/me/password ---------------------------------


async def test_wrong_current_passwords_count_toward_the_account_lockout(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    change = {"current_password": "not-the-password", "new_password": "a-new-long-passphrase"}

    guesses = [
        await client.post(PASSWORD_CHANGE, json=change, headers=account.headers) for _ in range(6)
    ]
    right = {"current_password": PASSWORD, "new_password": "a-new-long-passphrase"}
    with_the_right_one = await client.post(PASSWORD_CHANGE, json=right, headers=account.headers)
    login = await attempt_login(client, account.email, PASSWORD)

    assert [guess.status_code for guess in guesses] == [400] * 5 + [429]
    assert int(guesses[-1].headers["retry-after"]) >= 1
    assert with_the_right_one.status_code == 429
    # One lockout per account, whichever door the guesses came through.
    assert login.status_code == 429


async def test_concurrent_current_password_guesses_get_at_most_five_answers(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    change = {"current_password": "not-the-password", "new_password": "a-new-long-passphrase"}

    answers = await asyncio.gather(
        *(client.post(PASSWORD_CHANGE, json=change, headers=account.headers) for _ in range(16))
    )

    codes = Counter(answer.status_code for answer in answers)
    assert set(codes) <= {400, 429}, codes
    assert codes[400] <= 5, codes


async def test_a_right_current_password_gives_its_attempt_back(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    for _ in range(4):
        await attempt_login(client, account.email, "wrong-password")
    change = {"current_password": PASSWORD, "new_password": "a-new-long-passphrase"}

    changed = await client.post(PASSWORD_CHANGE, json=change, headers=account.headers)
    login = await attempt_login(client, account.email, "a-new-long-passphrase")

    assert changed.status_code == 204
    assert login.status_code == 200


# --- when Redis is slow or gone ---------------------------------------------------


@pytest.mark.parametrize("store", ["stopped", "hung"])
async def test_the_lockout_counts_in_the_process_when_redis_is_stopped_or_hung(
    app_factory: Callable[..., FastAPI], silent_port: int, store: str
) -> None:
    port = 1 if store == "stopped" else silent_port
    app = app_factory(
        redis_url=f"redis://127.0.0.1:{port}/0",
        rate_limit_storage_timeout_seconds=0.05,
        rate_limit_fail_open=True,
        rate_limit_login="1000/minute",
    )
    async with LifespanManager(app), client_for(app) as client, asyncio.timeout(120):
        await register(client, "victim@example.com")
        guesses = [
            await attempt_login(client, "victim@example.com", f"guess-{n}") for n in range(40)
        ]

    codes = Counter(guess.status_code for guess in guesses)
    assert set(codes) <= {401, 429}, codes
    assert codes[401] <= 5, codes
