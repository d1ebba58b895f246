from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import bcrypt
import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.core.config import Settings
from app.core.resources import Resources
from app.core.security.tokens import ALGORITHM, key_id
from app.identity.models import User
from tests.conftest import PASSWORD, AccountFactory, login, register

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
ME = "/api/v1/users/me"
SECRET = "test-secret-key-that-is-long-enough-0123456789"
KID = key_id(SECRET)


async def stored_user(resources: Resources, email: str) -> User:
    async with resources.sessionmaker() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return user


# --- registration -------------------------------------------------------------


async def test_register_creates_a_member_and_never_returns_the_hash(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    response = await client.post(
        REGISTER,
        json={"email": "Ada@Example.com", "password": PASSWORD, "full_name": "Ada Lovelace"},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert body["full_name"] == "Ada Lovelace"
    assert body["roles"] == ["member"]
    assert body["is_active"] is True
    assert "password" not in response.text
    assert "argon2" not in response.text
    stored = await stored_user(resources, "ada@example.com")
    # OWASP's argon2id floor: 19 MiB, two passes, one lane.
    assert stored.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_email_is_unique_case_insensitively(client: httpx.AsyncClient) -> None:
    await register(client, "grace@example.com")

    response = await client.post(
        REGISTER, json={"email": "GRACE@example.COM", "password": PASSWORD}
    )

    assert response.status_code == 409
    assert response.json()["type"] == "urn:groundwork:problem:conflict"


@pytest.mark.parametrize(
    "password",
    ["short", "1234567", "password", "Password123", "12345678", "x" * 129, "linus@example.com"],
)
async def test_weak_or_absurd_passwords_are_422(client: httpx.AsyncClient, password: str) -> None:
    response = await client.post(
        REGISTER, json={"email": "linus@example.com", "password": password}
    )

    assert response.status_code == 422
    # The rejected value is never echoed back (pydantic's `input` would).
    assert all(set(error) == {"loc", "msg", "type"} for error in response.json()["errors"])


@pytest.mark.parametrize(
    "extra",
    [{"roles": ["admin"]}, {"is_active": False}, {"id": str(uuid.uuid4())}, {"password_hash": "x"}],
)
async def test_register_refuses_mass_assignment(
    client: httpx.AsyncClient, resources: Resources, extra: dict[str, object]
) -> None:
    response = await client.post(
        REGISTER, json={"email": "mallory@example.com", "password": PASSWORD, **extra}
    )

    assert response.status_code == 422
    async with resources.sessionmaker() as session:
        assert await session.scalar(select(User)) is None


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.com"},
        {"email": 5, "password": PASSWORD},
        {"email": "a@example.com", "password": PASSWORD, "full_name": "x" * 201},
    ],
)
async def test_register_rejects_bad_input_with_422(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.post(REGISTER, json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_register_is_403_when_registration_is_closed(
    app_factory: Callable[..., FastAPI], settings: Settings
) -> None:
    from asgi_lifespan import LifespanManager

    from tests.conftest import client_for

    closed = app_factory(open_registration=False)
    async with LifespanManager(closed), client_for(closed) as client:
        response = await client.post(
            REGISTER, json={"email": "x@example.com", "password": PASSWORD}
        )

    assert response.status_code == 403


# --- login ----------------------------------------------------------------------


async def test_login_issues_a_bearer_token_with_every_claim(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.post(TOKEN, data={"username": account.email, "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    claims = jwt.decode(
        body["access_token"], SECRET, algorithms=[ALGORITHM], audience="groundwork-api"
    )
    assert claims["sub"] == str(account.id)
    assert claims["iss"] == "groundwork"
    assert claims["exp"] - claims["iat"] == 900
    assert {"sid", "jti"} <= set(claims)
    assert jwt.get_unverified_header(body["access_token"]) == {
        "alg": "HS256",
        "typ": "JWT",
        "kid": KID,
    }


async def test_login_accepts_the_email_in_any_case(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account("Case@Example.com")

    token = await login(client, account.email.upper())

    assert (await client.get(ME, headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_unknown_email_and_wrong_password_get_the_identical_401(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()

    wrong_password = await client.post(
        TOKEN, data={"username": account.email, "password": "not-the-password"}
    )
    unknown_email = await client.post(
        TOKEN, data={"username": "nobody@example.com", "password": "not-the-password"}
    )

    assert wrong_password.status_code == unknown_email.status_code == 401

    def comparable(response: httpx.Response) -> dict[str, object]:
        return {k: v for k, v in response.json().items() if k != "request_id"}

    assert comparable(wrong_password) == comparable(unknown_email)
    assert wrong_password.headers["www-authenticate"] == "Bearer"
    assert unknown_email.headers["www-authenticate"] == "Bearer"


async def test_deactivated_user_cannot_log_in_or_use_a_token(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    async with resources.sessionmaker() as session:
        user = await session.get(User, account.id)
        assert user is not None
        user.is_active = False
        await session.commit()

    denied_login = await client.post(TOKEN, data={"username": account.email, "password": PASSWORD})
    denied_token = await client.get(ME, headers=account.headers)

    assert denied_login.status_code == 401
    assert denied_token.status_code == 401


async def test_a_prototype_bcrypt_hash_verifies_and_is_upgraded_to_argon2id(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    async with resources.sessionmaker() as session:
        user = await session.get(User, account.id)
        assert user is not None
        user.password_hash = legacy
        await session.commit()

    await login(client, account.email)

    upgraded = await stored_user(resources, account.email)
    assert upgraded.password_hash.startswith("$argon2id$")
    await login(client, account.email)


async def test_a_login_form_missing_a_field_is_422_and_json_instead_of_a_form_is_415(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.post(TOKEN, data={"username": "a@example.com"})
    as_json = await client.post(TOKEN, json={"username": "a@example.com", "password": "x"})

    assert missing.status_code == 422
    assert as_json.status_code == 415


# --- forged and unusable tokens -------------------------------------------------


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(account_id: uuid.UUID, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(account_id),
        "sid": str(uuid.uuid4()),
        "iss": "groundwork",
        "aud": "groundwork-api",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(
    claims: dict[str, object], key: str = SECRET, algorithm: str = ALGORITHM, **header: object
) -> str:
    """Signed the way the server signs, naming the server's key unless told otherwise."""
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": KID, **header})


def _unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{_b64(header)}.{_b64(claims)}."


FORGERIES: dict[str, Callable[[uuid.UUID], str]] = {
    "alg_none": lambda uid: _unsigned({"alg": "none", "typ": "JWT", "kid": KID}, _claims(uid)),
    "other_key": lambda uid: _signed(_claims(uid), "another-key-" * 4),
    "hs512": lambda uid: _signed(_claims(uid), algorithm="HS512"),
    "expired": lambda uid: _signed(
        _claims(uid, iat=int(time.time()) - 3600, exp=int(time.time()) - 60)
    ),
    "wrong_audience": lambda uid: _signed(_claims(uid, aud="someone-else")),
    "wrong_issuer": lambda uid: _signed(_claims(uid, iss="evil")),
    "no_exp": lambda uid: _signed(_claims(uid, exp=None)),
    "no_sid": lambda uid: _signed(_claims(uid, sid=None)),
    "sub_not_uuid": lambda uid: _signed(_claims(uid, sub="admin")),
    "unknown_user": lambda uid: _signed(_claims(uuid.uuid4())),
    # Signed correctly, but for a session the server never started.
    "unknown_session": lambda uid: _signed(_claims(uid)),
    # Signed with the right key, but naming none or another.
    "no_kid": lambda uid: jwt.encode(_claims(uid), SECRET, algorithm=ALGORITHM),
    "unknown_kid": lambda uid: _signed(_claims(uid), kid="0123456789abcdef"),
    "kid_not_a_string": lambda uid: _unsigned({"alg": "HS256", "kid": ["a"]}, _claims(uid)),
    "garbage": lambda uid: "not.a.jwt",
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_forged_or_unusable_tokens_are_401(
    client: httpx.AsyncClient, make_account: AccountFactory, forgery: str
) -> None:
    account = await make_account()
    token = FORGERIES[forgery](account.id)

    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_token_naming_part_of_the_issuer_is_401(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    claims = jwt.decode(account.token, options={"verify_signature": False})
    # A live session, a valid signature, an issuer that is only a prefix of ours:
    # PyJWT 2.10.0 tested a string issuer with `in` and let it through.
    claims["iss"] = claims["iss"][:-1]
    token = _signed(claims)

    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


async def test_a_tampered_payload_is_401(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    victim, attacker = await make_account(), await make_account()
    header, _, signature = attacker.token.split(".")
    claims = jwt.decode(attacker.token, options={"verify_signature": False})
    claims["sub"] = str(victim.id)

    response = await client.get(
        ME, headers={"Authorization": f"Bearer {header}.{_b64(claims)}.{signature}"}
    )

    assert response.status_code == 401


async def test_a_genuine_token_is_accepted(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    # The control for the forgeries above: a token minted with the server's key
    # for a live session works.
    account = await make_account()
    sid = jwt.decode(account.token, options={"verify_signature": False})["sid"]
    token = _signed(_claims(account.id, sid=sid))

    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
