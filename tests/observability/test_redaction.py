"""No password, token or secret key ever reaches the output, whatever the code logs.

The journey below drives every route that handles a secret, plus a crash
whose message and locals hold some and a failing SQL statement whose
parameters do, and then scans everything the process
wrote — stdout, stderr and each log line — for every secret value seen.
Adding a route that handles a secret means adding one step to STEPS.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from sqlalchemy import select, text

from app.core.config import Settings
from app.core.mail import MemoryMailer
from app.core.redaction import REDACTED, Redactor
from app.identity.models import User
from app.main import create_app
from app.web.deps import SessionDep
from tests.conftest import bearer, client_for, run_jobs
from tests.observability.conftest import LogLines

PASSWORD = "first-Secret-passphrase-41"


@dataclass
class Journey:
    app: FastAPI
    client: httpx.AsyncClient
    email: str = field(default_factory=lambda: f"redact-{uuid.uuid4().hex[:8]}@example.com")
    password: str = PASSWORD
    access_token: str = ""
    refresh_token: str = ""
    secrets: dict[str, str] = field(default_factory=dict)

    def keep(self, name: str, value: str) -> str:
        assert value, name
        self.secrets[name] = value
        return value

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


async def register(j: Journey) -> None:
    j.keep("registration password", j.password)
    response = await j.client.post(
        "/api/v1/auth/register", json={"email": j.email, "password": j.password}
    )
    assert response.status_code == 201, response.text


async def log_in(j: Journey) -> None:
    wrong = j.keep("wrong password", "not-my-Password-99")
    refused = await j.client.post(
        "/api/v1/auth/token", data={"username": j.email, "password": wrong}
    )
    assert refused.status_code == 401
    response = await j.client.post(
        "/api/v1/auth/token", data={"username": j.email, "password": j.password}
    )
    assert response.status_code == 200, response.text
    j.access_token = j.keep("access token", response.json()["access_token"])
    j.refresh_token = j.keep("refresh token", response.json()["refresh_token"])
    me = await j.client.get("/api/v1/users/me", headers=j.headers)
    assert me.status_code == 200


async def refresh(j: Journey) -> None:
    spent = j.refresh_token
    response = await j.client.post("/api/v1/auth/refresh", json={"refresh_token": spent})
    assert response.status_code == 200, response.text
    j.access_token = j.keep("refreshed access token", response.json()["access_token"])
    j.refresh_token = j.keep("refreshed refresh token", response.json()["refresh_token"])
    # Reuse of the spent token is logged as a security event: with no token in it.
    reused = await j.client.post("/api/v1/auth/refresh", json={"refresh_token": spent})
    assert reused.status_code == 401


async def reset_password(j: Journey) -> None:
    requested = await j.client.post("/api/v1/auth/password-reset/request", json={"email": j.email})
    assert requested.status_code == 202
    await run_jobs(j.app.state.resources)
    mailer = j.app.state.resources.mailer
    assert isinstance(mailer, MemoryMailer)
    match = re.search(r"Reset token: (\S+)", mailer.outbox[-1].body)
    assert match is not None, mailer.outbox[-1].body
    token = j.keep("reset token", match.group(1))
    j.password = j.keep("password set by reset", "second-Secret-passphrase-42")
    confirmed = await j.client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": j.password}
    )
    assert confirmed.status_code == 204, confirmed.text
    await log_in(j)


async def change_password(j: Journey) -> None:
    new = j.keep("changed password", "third-Secret-passphrase-43")
    response = await j.client.post(
        "/api/v1/users/me/password",
        json={"current_password": j.password, "new_password": new},
        headers=j.headers,
    )
    assert response.status_code == 204, response.text
    j.password = new


async def crash(j: Journey) -> None:
    response = await j.client.post(
        "/crash-with-secrets", json={"password": j.password}, headers=j.headers
    )
    assert response.status_code == 500


async def crash_in_sql(j: Journey) -> None:
    sessionmaker = j.app.state.resources.sessionmaker
    async with sessionmaker() as session:
        stored = await session.scalar(select(User.password_hash).where(User.email == j.email))
    j.keep("password hash", stored)
    response = await j.client.post(
        "/crash-in-sql", json={"email": j.email, "password": j.password}, headers=j.headers
    )
    assert response.status_code == 500


# (path the step needs, step): a step whose route does not exist is skipped.
STEPS: list[tuple[str, Callable[[Journey], Awaitable[None]]]] = [
    ("/api/v1/auth/register", register),
    ("/api/v1/auth/token", log_in),
    ("/api/v1/auth/refresh", refresh),
    ("/api/v1/auth/password-reset/confirm", reset_password),
    ("/api/v1/users/me/password", change_password),
    ("/crash-with-secrets", crash),
    ("/crash-in-sql", crash_in_sql),
]


def add_careless_route(app: FastAPI, settings: Settings) -> None:
    """A handler that does everything wrong: the safety net must still hold."""
    log = structlog.get_logger("test.careless")

    @app.post("/crash-with-secrets")
    async def careless(request: Request) -> None:
        body = await request.json()
        password = body["password"]
        authorization = request.headers["authorization"]
        secret_key = settings.secret_key.get_secret_value()
        log.info("careless.dump", password=password, headers=dict(request.headers))
        log.info("careless.innocent_names", value=secret_key, note=f"sent {authorization}")
        # A password in free text cannot be told from other words; the
        # traceback's locals (`password` above) are never rendered.
        raise RuntimeError(f"upstream refused {authorization} signed with {secret_key}")

    @app.post("/crash-in-sql")
    async def careless_sql(request: Request, session: SessionDep) -> None:
        # A failing statement whose parameters hold a password hash and a password.
        body = await request.json()
        stored = await session.scalar(select(User.password_hash).where(User.email == body["email"]))
        await session.execute(
            text("INSERT INTO no_such_table VALUES (:hash, :password)"),
            {"hash": stored, "password": body["password"]},
        )


# DEBUG lets through what libraries log about each query and request.
@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
async def test_no_secret_reaches_any_output(
    settings: Settings, capfd: pytest.CaptureFixture[str], log_level: str
) -> None:
    app = create_app(settings.model_copy(update={"mail_backend": "memory", "log_level": log_level}))
    add_careless_route(app, settings)
    lines = LogLines()
    paths = set(app.openapi()["paths"]) | {"/crash-with-secrets", "/crash-in-sql"}
    async with LifespanManager(app), client_for(app) as client:
        journey = Journey(app, client)
        journey.keep("SECRET_KEY", settings.secret_key.get_secret_value())
        ran = []
        for path, step in STEPS:
            if path in paths:
                await step(journey)
                ran.append(step.__name__)

    captured = capfd.readouterr()
    output = captured.out + captured.err + lines.text()
    assert {"register", "log_in", "crash", "crash_in_sql"} <= set(ran)
    # The scan reads real output: the journey's access lines are there.
    assert '"route":"/api/v1/auth/token"' in output
    assert '"event":"careless.dump"' in output
    assert "RuntimeError" in output
    assert "no_such_table" in output
    leaked = [name for name, secret in journey.secrets.items() if secret in output]
    assert leaked == []
    assert REDACTED in output


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"password": "hunter22"}, {"password": REDACTED}),
        (
            {"new_password": "x", "refresh_token": "y"},
            {"new_password": REDACTED, "refresh_token": REDACTED},
        ),
        ({"Authorization": "Bearer abc"}, {"Authorization": REDACTED}),
        (
            {"headers": {"cookie": "sid=1", "accept": "*/*"}},
            {"headers": {"cookie": REDACTED, "accept": "*/*"}},
        ),
        ({"note": "sent Bearer abc.def-ghi"}, {"note": f"sent {REDACTED}"}),
        # The scheme in any case, as the header allows.
        ({"note": "sent BEARER abc.def-ghi"}, {"note": f"sent {REDACTED}"}),
        ({"note": "sent bEaReR abc"}, {"note": f"sent {REDACTED}"}),
        ({"note": "jwt eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl end"}, {"note": f"jwt {REDACTED} end"}),
        ({"note": "key is the-configured-secret!"}, {"note": f"key is {REDACTED}!"}),
        ({"items": ["the-configured-secret", 3]}, {"items": [REDACTED, 3]}),
        ({"user_id": "42", "status": 200}, {"user_id": "42", "status": 200}),
        # A line of many fields is searched at once: a secret in any one is found...
        (
            {"route": "/r", "path": "/x/the-configured-secret", "status": 200, "ms": 1.5},
            {"route": "/r", "path": f"/x/{REDACTED}", "status": 200, "ms": 1.5},
        ),
        # ...a sensitive key is replaced whatever its value's type...
        (
            {"token_count": 3, "path": "/plain/path"},
            {"token_count": REDACTED, "path": "/plain/path"},
        ),
        # ...and two fields never join into a secret.
        (
            {"first": "the-configured", "second": "-secret"},
            {"first": "the-configured", "second": "-secret"},
        ),
    ],
)
def test_redactor_replaces_secrets_and_nothing_else(
    event: dict[str, object], expected: dict[str, object]
) -> None:
    redact = Redactor(["the-configured-secret", "tiny"])

    assert redact(None, "info", {"event": "e", **event}) == {"event": "e", **expected}
