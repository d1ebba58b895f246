"""A new password voids every reset token still outstanding for the account.

A reset mail left in an inbox (or an older one an attacker intercepted) must
not outlive the password it was meant to replace, however that password was
changed: by a reset, by the owner, or by an operator. A rehash at login keeps
the same password, so it leaves them alone.
"""

from __future__ import annotations

import asyncio
import re

import bcrypt
import httpx
from sqlalchemy import select

from app.core.mail import MemoryMailer
from app.core.resources import Resources
from app.identity.models import User
from tests.conftest import PASSWORD, AccountFactory, Operator, login, run_jobs
from tests.helpers import app_environment

RESET_REQUEST = "/api/v1/auth/password-reset/request"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
CHANGE_PASSWORD = "/api/v1/users/me/password"
NEW_PASSWORD = "a-brand-new-passphrase"
LATER_PASSWORD = "yet-another-passphrase-7"


async def request_token(client: httpx.AsyncClient, resources: Resources, email: str) -> str:
    response = await client.post(RESET_REQUEST, json={"email": email})
    assert response.status_code == 202
    await run_jobs(resources)
    mailer = resources.mailer
    assert isinstance(mailer, MemoryMailer)
    match = re.search(r"Reset token: (\S+)", mailer.outbox[-1].body)
    assert match is not None, mailer.outbox[-1].body
    return match.group(1)


async def confirm(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await client.post(RESET_CONFIRM, json={"token": token, "new_password": password})


async def test_completing_a_reset_voids_the_other_outstanding_tokens(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    older = await request_token(client, resources, account.email)
    newer = await request_token(client, resources, account.email)

    used = await confirm(client, newer, NEW_PASSWORD)
    stale = await confirm(client, older, LATER_PASSWORD)

    assert used.status_code == 204
    assert stale.status_code == 400
    assert stale.json()["type"] == "urn:groundwork:problem:invalid-token"
    await login(client, account.email, NEW_PASSWORD)


async def test_changing_the_password_voids_outstanding_reset_tokens(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    token = await request_token(client, resources, account.email)

    changed = await client.post(
        CHANGE_PASSWORD,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )
    stale = await confirm(client, token, LATER_PASSWORD)

    assert changed.status_code == 204
    assert stale.status_code == 400
    await login(client, account.email, NEW_PASSWORD)


async def test_set_password_from_the_cli_voids_outstanding_reset_tokens(
    operator: Operator,
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
) -> None:
    account = await make_account()
    token = await request_token(client, resources, account.email)
    cli_env = app_environment(resources.settings)

    result = await operator(
        "set-password",
        account.email,
        "--password-stdin",
        env=cli_env,
        stdin=f"{NEW_PASSWORD}\n",
    )
    stale = await confirm(client, token, LATER_PASSWORD)

    assert result.returncode == 0, result.stderr
    assert stale.status_code == 400
    await login(client, account.email, NEW_PASSWORD)


async def test_a_rehash_at_login_keeps_outstanding_reset_tokens(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    async with resources.sessionmaker() as session:
        user = await session.get(User, account.id)
        assert user is not None
        user.password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        await session.commit()
    token = await request_token(client, resources, account.email)

    await login(client, account.email)
    async with resources.sessionmaker() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == account.id))
    used = await confirm(client, token, NEW_PASSWORD)

    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert used.status_code == 204


async def test_of_two_tokens_confirmed_at_once_exactly_one_sets_the_password(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    first = await request_token(client, resources, account.email)
    second = await request_token(client, resources, account.email)

    answers = await asyncio.gather(
        confirm(client, first, NEW_PASSWORD), confirm(client, second, LATER_PASSWORD)
    )

    assert sorted(answer.status_code for answer in answers) == [204, 400]
    winner = NEW_PASSWORD if answers[0].status_code == 204 else LATER_PASSWORD
    await login(client, account.email, winner)
