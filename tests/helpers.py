"""What tests share that is not a fixture: settings, HTTP calls, ports and a clock to move.

Accounts, items and roles made straight in the database are in
tests/factories.py; the fixtures over both are in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
from aiosmtpd.smtp import Envelope, Session
from alembic.config import Config
from pydantic import SecretStr
from starlette.types import ASGIApp

from app.cli import ALEMBIC_INI
from app.core.clock import Clock
from app.core.config import Settings

PASSWORD = "correct-horse-battery-staple"
TOKEN = "/api/v1/auth/token"
REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


# --- settings and schema ------------------------------------------------------------


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, Any] = {
        "app_env": "test",
        "database_url": database_url,
        "secret_key": SecretStr(SECRET_KEY),
        "log_format": "json",
        "mail_backend": "memory",
        # Tests run the queued jobs when they choose to: run_jobs(resources).
        "jobs_in_process": False,
        "first_admin_email": None,
        "first_admin_password": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def app_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `python -m app` process needs to use the test's database and key."""
    return {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key.get_secret_value(),
        **extra,
    }


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


# --- HTTP ------------------------------------------------------------------------------


def client_for(application: ASGIApp, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client for an ASGI app, calling from `address` (the direct peer)."""
    transport = httpx.ASGITransport(app=application, client=(address, 123))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def bearer(access_token: str) -> dict[str, str]:
    """The Authorization header carrying `access_token`."""
    return {"Authorization": f"Bearer {access_token}"}


async def register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> uuid.UUID:
    """Register over HTTP (the real hasher runs); the new account's id."""
    response = await client.post(REGISTER, json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def start_session(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **headers: str
) -> dict[str, Any]:
    """Log in over HTTP: a session of its own, with its access and refresh token."""
    response = await client.post(
        TOKEN, data={"username": email, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Log in over HTTP; the access token."""
    token: str = (await start_session(client, email, password))["access_token"]
    return token


async def sign_up(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Register and log in over HTTP, as a new user would; the access token."""
    await register(client, email, password)
    return await login(client, email, password)


async def attempt_login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    """One try at the login form, whatever it answers."""
    return await client.post(TOKEN, data={"username": email, "password": password})


async def login_status(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> int:
    return (await attempt_login(client, email, password)).status_code


async def refresh_status(client: httpx.AsyncClient, refresh_token: str) -> int:
    response = await client.post(REFRESH, json={"refresh_token": refresh_token})
    return response.status_code


# --- the command line -----------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What a CLI command answered: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


# The `operator` fixture: runs `python -m app ARGS` in-process, on `env` and `stdin`.
Operator = Callable[..., Awaitable[Ran]]


# --- processes and ports -------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nobody listens on, for a server a test starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- time ----------------------------------------------------------------------------


class SettableClock(Clock):
    """The real time until a test stops it; then it moves only when the test says.

    Both readings move together, so an expiry (wall-clock) and an in-process
    window (monotonic) see the same jump.
    """

    def __init__(self) -> None:
        self._wall: datetime | None = None
        self._monotonic = 0.0

    def now(self) -> datetime:
        return self._wall if self._wall is not None else super().now()

    def monotonic(self) -> float:
        return self._monotonic if self._wall is not None else super().monotonic()

    def stop(self, at: datetime | None = None) -> datetime:
        """Stand still at `at` (default: now); the instant it stands at."""
        self._wall = at or super().now()
        self._monotonic = super().monotonic()
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move on (or back, when negative) by `seconds`; stops the clock first if it runs."""
        if self._wall is None:
            self.stop()
        assert self._wall is not None
        self._wall += timedelta(seconds=seconds)
        self._monotonic += seconds

    def resume(self) -> None:
        """Follow the real time again."""
        self._wall = None


class SmtpServer:
    """An SMTP server's handler (aiosmtpd) keeping what it accepts.

    While `refusing`, every message is turned away with a 451; while `gate` is
    shut, a message is held (and `holding` set) until it opens, so a test can
    stop a delivery half-way.
    """

    # How long a held message waits for the gate at most.
    HOLD_SECONDS = 60.0

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refused = 0
        self.refusing = False
        self.gate = threading.Event()
        self.gate.set()
        self.holding = threading.Event()

    @property
    def recipients(self) -> list[str]:
        return [str(message["To"]) for message in self.messages]

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        if self.refusing:
            self.refused += 1
            return "451 4.3.0 Try again later"
        if not self.gate.is_set():
            self.holding.set()
            await asyncio.to_thread(self.gate.wait, self.HOLD_SECONDS)
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"
