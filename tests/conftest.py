"""Fixtures on a real database: SQLite by default, PostgreSQL with TEST_DATABASE_URL.

Rate limits count in the process by default, in Redis with TEST_REDIS_URL
(whose database is flushed before every test).

The schema is built once per run by the migrations themselves; each test then
starts from empty tables (the seeded built-in roles excepted), so tests are
isolated and run in any order.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.tokens import login_sessions_of, token_pair
from app.cli import ALEMBIC_INI
from app.core.config import Settings
from app.core.resources import Resources
from app.core.security.passwords import PasswordHasher
from app.db.engine import create_engine
from app.db.types import utcnow
from app.jobs.registry import HANDLERS
from app.jobs.runner import JobRunner
from app.main import create_app
from app.models import Base, Role, RolePermission, User
from app.rbac.grants import ADMIN_ROLE, MEMBER_ROLE, RoleGrants

SEEDED_TABLES = {"roles", "role_permissions"}
BUILTIN_ROLES = (ADMIN_ROLE, MEMBER_ROLE)
PASSWORD = "correct-horse-battery-staple"


def free_port() -> int:
    """A loopback TCP port nobody listens on, for a server a test starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_env": "test",
        "database_url": database_url,
        "secret_key": SecretStr("test-secret-key-that-is-long-enough-0123456789"),
        "log_format": "json",
        "mail_backend": "memory",
        # Tests run the queued jobs when they choose to: run_jobs(resources).
        "jobs_in_process": False,
        "first_admin_email": None,
        "first_admin_password": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    path = Path(tmp_path_factory.mktemp("db")) / "test.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
async def redis_client() -> AsyncIterator[Redis | None]:
    """The harness's own client for TEST_REDIS_URL; None without it.

    Set but not answering: the run fails under CI=true; elsewhere it goes on
    with in-process storage and the Redis-only tests skip.
    """
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        yield None
        return
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await client.ping()
    except RedisError as exc:
        await client.aclose()
        message = f"TEST_REDIS_URL is set but Redis does not answer there: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        warnings.warn(message, stacklevel=1)
        yield None
        return
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_url(redis_client: Redis | None) -> str | None:
    return os.environ["TEST_REDIS_URL"] if redis_client is not None else None


@pytest.fixture(autouse=True)
async def _flush_redis(redis_client: Redis | None) -> None:
    if redis_client is not None:
        await redis_client.flushdb()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str | None) -> Settings:
    return make_settings(database_url, redis_url=redis_url)


@pytest.fixture(scope="session")
async def admin_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A connection of the test harness's own, for schema setup and cleanup."""
    engine = create_engine(settings)
    if engine.dialect.name == "postgresql":
        # A reused database may hold a schema from another branch: start clean.
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    # Alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, alembic_config(settings.database_url), "head")
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def seeded_grants(admin_engine: AsyncEngine) -> list[tuple[str, str]]:
    """The built-in roles' permissions as the migrations left them, by role name.

    By name, not id: a test that migrates down and up again seeds new ids.
    """
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            select(Role.name, RolePermission.permission).join(
                RolePermission, RolePermission.role_id == Role.id
            )
        )
        return [(name, permission) for name, permission in rows]


@pytest.fixture(autouse=True)
async def _clean_tables(
    admin_engine: AsyncEngine, seeded_grants: list[tuple[str, str]]
) -> AsyncIterator[None]:
    yield
    async with admin_engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in SEEDED_TABLES:
                await connection.execute(delete(table))
        await connection.execute(delete(Role).where(Role.name.not_in(BUILTIN_ROLES)))
        # A test may change what a built-in role grants: the next starts from the seed.
        await connection.execute(delete(RolePermission))
        roles = await connection.execute(select(Role.name, Role.id))
        role_ids = {row.name: row.id for row in roles}
        await connection.execute(
            insert(RolePermission),
            [{"role_id": role_ids[name], "permission": perm} for name, perm in seeded_grants],
        )


@pytest.fixture
def app_factory(settings: Settings) -> Callable[..., FastAPI]:
    def build(**overrides: object) -> FastAPI:
        return create_app(settings.model_copy(update=overrides) if overrides else settings)

    return build


@pytest.fixture
async def app(app_factory: Callable[..., FastAPI]) -> AsyncIterator[FastAPI]:
    application = app_factory()
    async with LifespanManager(application):
        yield application


def client_for(application: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client for the app, calling from `address` (the direct peer)."""
    transport = httpx.ASGITransport(app=application, client=(address, 123))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http


@pytest.fixture
def resources(app: FastAPI) -> Resources:
    resources = app.state.resources
    assert isinstance(resources, Resources)
    return resources


async def run_jobs(resources: Resources) -> int:
    """Run every job due now in this process, as the in-process runner would; how many ran."""
    return await JobRunner(resources, HANDLERS).run_due()


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> uuid.UUID:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def start_session(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **headers: str
) -> dict[str, Any]:
    """Log in once more: a separate session with its own access and refresh token."""
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


async def login_status(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> int:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    return response.status_code


async def refresh_status(client: httpx.AsyncClient, refresh_token: str) -> int:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    return response.status_code


AccountFactory = Callable[..., Awaitable[Account]]


@pytest.fixture(scope="session")
async def password_hash(settings: Settings) -> str:
    """PASSWORD hashed once, by the real hasher with the suite's settings."""
    hasher = PasswordHasher(settings)
    try:
        return await hasher.hash(PASSWORD)
    finally:
        hasher.close()


@pytest.fixture
def make_account(resources: Resources, password_hash: str) -> AccountFactory:
    """An account holding `member` and `roles`, with a live login session and its access token.

    Written through the repositories with a hash made once per run, and the
    token issued by the app's own codec: two argon2 hashes fewer per account.
    Registering and logging in over HTTP are tested in tests/auth/.
    """

    async def make(email: str | None = None, *, roles: tuple[str, ...] = ()) -> Account:
        email = (email or f"user-{uuid.uuid4().hex[:10]}@example.com").lower()
        async with resources.sessionmaker() as session:
            user = User(email=email, full_name=None, password_hash=password_hash)
            session.add(user)
            await session.flush()
            grants = RoleGrants(session, resources.permissions)
            for role in dict.fromkeys((MEMBER_ROLE, *roles)):
                await grants.assign_role(user.id, role)
            issued = await login_sessions_of(session, resources).start(user.id, utcnow())
            await session.commit()
        return Account(user.id, email, PASSWORD, token_pair(resources, issued).access_token)

    return make


@pytest.fixture
def make_registered_account(client: httpx.AsyncClient, resources: Resources) -> AccountFactory:
    """Register and log in over HTTP, for tests of what those two record (audit events)."""

    async def make(email: str | None = None, *, roles: tuple[str, ...] = ()) -> Account:
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        user_id = await register(client, email)
        if roles:
            async with resources.sessionmaker() as session:
                rbac = RoleGrants(session, resources.permissions)
                for role in roles:
                    await rbac.assign_role(user_id, role)
                await session.commit()
        return Account(user_id, email, PASSWORD, await login(client, email))

    return make


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A local port that accepts connections and never answers: a hung dependency."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
