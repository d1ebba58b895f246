"""Accounts imported with bcrypt hashes of passwords longer than bcrypt reads.

bcrypt reads at most 72 bytes of a password; the prototype whose user table
is imported hashed the first 72 bytes of the UTF-8 encoding and ignored the
rest. Its users must still get in with the whole password they always typed,
and leave with an argon2id hash of that whole password.
"""

from __future__ import annotations

import bcrypt
import httpx
import pytest
from sqlalchemy import select

from app.core.resources import Resources
from app.identity.models import User
from tests.conftest import AccountFactory
from tests.helpers import attempt_login

TOKEN = "/api/v1/auth/token"
# 78 bytes in UTF-8, 56 characters; the 72nd byte is the first half of an "é".
LONG_PASSWORD = "imported-from-the-prototype--" + "é" * 22 + "-tail"
CUT = LONG_PASSWORD.encode()[:72]


async def import_bcrypt_hash(resources: Resources, user_id: object, secret: bytes) -> None:
    async with resources.sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        user.password_hash = bcrypt.hashpw(secret, bcrypt.gensalt(rounds=4)).decode()
        await session.commit()


async def stored_hash(resources: Resources, user_id: object) -> str:
    async with resources.sessionmaker() as session:
        value = await session.scalar(select(User.password_hash).where(User.id == user_id))
    assert value is not None
    return value


async def test_a_long_password_logs_in_against_its_imported_bcrypt_hash_and_is_upgraded(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    await import_bcrypt_hash(resources, account.id, CUT)
    with pytest.raises(UnicodeDecodeError):
        CUT.decode()

    first = await attempt_login(client, account.email, LONG_PASSWORD)
    upgraded = await stored_hash(resources, account.id)
    again = await attempt_login(client, account.email, LONG_PASSWORD)
    # argon2id reads the whole password: sharing the first 72 bytes is not enough.
    same_start = await attempt_login(client, account.email, CUT.decode(errors="ignore") + "-other")

    assert first.status_code == 200, first.text
    assert upgraded.startswith("$argon2id$")
    assert again.status_code == 200, again.text
    assert same_start.status_code == 401


@pytest.mark.parametrize(
    "wrong_password",
    ["x" * 73 + LONG_PASSWORD[:40], LONG_PASSWORD[:20] + "\x00" + LONG_PASSWORD[20:]],
    ids=["longer-than-72-bytes", "with-a-nul-byte"],
)
async def test_a_wrong_password_against_a_bcrypt_hash_is_401(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    wrong_password: str,
) -> None:
    account = await make_account()
    await import_bcrypt_hash(resources, account.id, CUT)

    wrong = await attempt_login(client, account.email, wrong_password)

    assert wrong.status_code == 401
    assert wrong.json()["type"] == "urn:groundwork:problem:invalid-credentials"
    assert (await stored_hash(resources, account.id)).startswith("$2b$")
