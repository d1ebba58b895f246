"""Sessions: refresh rotation, reuse detection, logout, and password reset."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from app.audit.models import AuditEvent
from app.core.mail import MemoryMailer
from app.core.resources import Resources
from app.db.types import utcnow
from app.identity.models import PasswordResetToken
from tests.conftest import PASSWORD, AccountFactory, register, run_jobs
from tests.helpers import bearer, start_session

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOGOUT_ALL = "/api/v1/auth/logout-all"
RESET_REQUEST = "/api/v1/auth/password-reset/request"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a-brand-new-passphrase"


async def audit_actions(resources: Resources) -> list[str]:
    async with resources.sessionmaker() as session:
        return list((await session.scalars(select(AuditEvent.action))).all())


# --- refresh ---------------------------------------------------------------------


async def test_login_returns_an_opaque_refresh_token(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    pair = await start_session(client, account.email)

    # Opaque: not a JWT, and long enough to carry 256 bits.
    assert pair["refresh_token"].count(".") == 0
    assert len(pair["refresh_token"]) >= 43


async def test_refresh_rotates_and_spends_the_old_token(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    first = await start_session(client, account.email)

    second = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert second.status_code == 200
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 200
    third = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert third.status_code == 200


async def test_refresh_token_reuse_revokes_the_family(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    stolen = await start_session(client, account.email)
    rotated = (await client.post(REFRESH, json={"refresh_token": stolen["refresh_token"]})).json()
    newest = (await client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})).json()

    replay = await client.post(REFRESH, json={"refresh_token": stolen["refresh_token"]})

    assert replay.status_code == 401
    assert replay.headers["www-authenticate"] == "Bearer"
    # Everything descended from that login is dead, the newest pair included.
    assert (
        await client.post(REFRESH, json={"refresh_token": newest["refresh_token"]})
    ).status_code == 401
    assert (await client.get(ME, headers=bearer(newest["access_token"]))).status_code == 401
    assert (await client.get(ME, headers=bearer(stolen["access_token"]))).status_code == 401
    assert "auth.refresh_reuse_detected" in await audit_actions(resources)


async def test_reuse_in_one_session_leaves_other_sessions_alone(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    laptop = await start_session(client, account.email)
    phone = await start_session(client, account.email)
    await client.post(REFRESH, json={"refresh_token": laptop["refresh_token"]})

    await client.post(REFRESH, json={"refresh_token": laptop["refresh_token"]})

    assert (await client.get(ME, headers=bearer(phone["access_token"]))).status_code == 200


async def test_two_concurrent_refreshes_with_one_token_do_not_both_succeed(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    pair = await start_session(client, account.email)

    responses = await asyncio.gather(
        *(client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}) for _ in range(4))
    )

    assert sum(r.status_code == 200 for r in responses) <= 1
    assert all(r.status_code in {200, 401} for r in responses)


async def test_unknown_or_malformed_refresh_tokens_are_refused(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.post(REFRESH, json={"refresh_token": "x" * 43})
    empty = await client.post(REFRESH, json={"refresh_token": ""})
    huge = await client.post(REFRESH, json={"refresh_token": "x" * 10_000})
    extra = await client.post(REFRESH, json={"refresh_token": "x", "user_id": "admin"})

    assert unknown.status_code == 401
    assert [empty.status_code, huge.status_code, extra.status_code] == [422, 422, 422]


async def test_an_expired_session_cannot_refresh(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    from app.identity.models import LoginSession

    account = await make_account()
    pair = await start_session(client, account.email)
    async with resources.sessionmaker() as session:
        await session.execute(
            update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    response = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 401


# --- logout -------------------------------------------------------------------------


async def test_logout_ends_that_session_only(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    ended = await start_session(client, account.email)
    kept = await start_session(client, account.email)

    response = await client.post(LOGOUT, json={"refresh_token": ended["refresh_token"]})

    assert response.status_code == 204
    assert (
        await client.post(REFRESH, json={"refresh_token": ended["refresh_token"]})
    ).status_code == 401
    assert (await client.get(ME, headers=bearer(ended["access_token"]))).status_code == 401
    assert (await client.get(ME, headers=bearer(kept["access_token"]))).status_code == 200


async def test_logout_with_an_unknown_token_is_204(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGOUT, json={"refresh_token": "never-issued"})

    assert response.status_code == 204


async def test_logout_all_rejects_every_token_issued_before(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    sessions = [await start_session(client, account.email) for _ in range(3)]

    response = await client.post(LOGOUT_ALL, headers=bearer(sessions[0]["access_token"]))

    assert response.status_code == 204
    for pair in sessions:
        assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 401
        refreshed = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 401
    # Logging in again afterwards works: the account is not locked.
    again = await start_session(client, account.email)
    assert (await client.get(ME, headers=bearer(again["access_token"]))).status_code == 200
    assert "auth.logout_all" in await audit_actions(resources)


async def test_logout_all_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGOUT_ALL)

    assert response.status_code == 401


# --- password reset -------------------------------------------------------------------


async def outbox(resources: Resources) -> MemoryMailer:
    """The mail sent so far, once the jobs queued so far have run."""
    await run_jobs(resources)
    mailer = resources.mailer
    assert isinstance(mailer, MemoryMailer)
    return mailer


def token_in(body: str) -> str:
    match = re.search(r"Reset token: (\S+)", body)
    assert match, body
    return match.group(1)


async def test_reset_request_is_202_for_known_and_unknown_emails(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()

    known = await client.post(RESET_REQUEST, json={"email": account.email})
    unknown = await client.post(RESET_REQUEST, json={"email": "nobody@example.com"})

    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    assert [mail.to for mail in (await outbox(resources)).outbox] == [account.email]


async def test_reset_token_is_stored_only_as_a_hash(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    await client.post(RESET_REQUEST, json={"email": account.email})
    token = token_in((await outbox(resources)).outbox[-1].body)

    async with resources.sessionmaker() as session:
        stored = (await session.scalars(select(PasswordResetToken))).all()

    assert len(stored) == 1
    assert stored[0].token_digest != token
    assert token not in stored[0].token_digest


async def test_reset_confirm_sets_the_password_once_and_ends_all_sessions(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    before = await start_session(client, account.email)
    await client.post(RESET_REQUEST, json={"email": account.email})
    token = token_in((await outbox(resources)).outbox[-1].body)

    confirmed = await client.post(
        RESET_CONFIRM, json={"token": token, "new_password": NEW_PASSWORD}
    )
    again = await client.post(
        RESET_CONFIRM, json={"token": token, "new_password": "another-one-entirely"}
    )

    assert confirmed.status_code == 204
    assert again.status_code == 400
    assert again.json()["type"] == "urn:groundwork:problem:invalid-token"
    assert (await client.get(ME, headers=bearer(before["access_token"]))).status_code == 401
    assert (
        await client.post(REFRESH, json={"refresh_token": before["refresh_token"]})
    ).status_code == 401
    old = await client.post(TOKEN, data={"username": account.email, "password": PASSWORD})
    assert old.status_code == 401
    await start_session(client, account.email, NEW_PASSWORD)
    assert "user.password_reset" in await audit_actions(resources)


async def test_an_expired_reset_token_is_400(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    await client.post(RESET_REQUEST, json={"email": account.email})
    token = token_in((await outbox(resources)).outbox[-1].body)
    async with resources.sessionmaker() as session:
        await session.execute(
            update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    response = await client.post(RESET_CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})

    assert response.status_code == 400
    await start_session(client, account.email)


async def test_reset_confirm_refuses_a_weak_password_and_keeps_the_token(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    await client.post(RESET_REQUEST, json={"email": account.email})
    token = token_in((await outbox(resources)).outbox[-1].body)

    weak = await client.post(RESET_CONFIRM, json={"token": token, "new_password": "password"})
    strong = await client.post(RESET_CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})

    assert weak.status_code == 422
    assert strong.status_code == 204


async def test_forged_reset_tokens_are_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        RESET_CONFIRM, json={"token": "made-up-token", "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 400


async def test_registration_then_reset_for_an_uppercase_email(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await register(client, "mixed@example.com")

    await client.post(RESET_REQUEST, json={"email": "MIXED@Example.com"})

    assert [mail.to for mail in (await outbox(resources)).outbox] == ["mixed@example.com"]


async def test_reset_confirm_refuses_the_email_as_the_new_password(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    await client.post(RESET_REQUEST, json={"email": account.email})
    token = token_in((await outbox(resources)).outbox[-1].body)

    refused = await client.post(RESET_CONFIRM, json={"token": token, "new_password": account.email})
    accepted = await client.post(RESET_CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})

    assert refused.status_code == 422
    assert accepted.status_code == 204
