"""Fixtures on a real database: SQLite by default, PostgreSQL with TEST_DATABASE_URL.

Rate limits count in the process by default, in Redis with TEST_REDIS_URL
(whose database is flushed before every test).

The schema is built once per run by the migrations themselves; each test then
starts from empty tables (the seeded built-in roles excepted), so tests are
isolated and run in any order. The app is built once per run as well (FastAPI
compiles its routes per app object: the costliest part of a first request),
and each test runs its own lifespan on it, so resources, pools, in-process
rate limits and the mail outbox are new in every test. A test that changes
settings or adds routes builds an app of its own with `app_factory`.

Helpers that are not fixtures are in tests/helpers.py and the database
factories in tests/factories.py; this module re-exports their older names.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from alembic import command
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.cli import main
from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.resources import Resources
from app.core.security.passwords import PasswordHasher
from app.db.engine import create_engine
from app.jobs.registry import HANDLERS
from app.jobs.runner import JobRunner
from app.main import create_app
from app.models import Base, Role, RolePermission
from app.rbac.grants import ADMIN_ROLE, MEMBER_ROLE, RoleGrants
from tests.factories import Account, create_account, new_email
from tests.helpers import (
    PASSWORD,
    Operator,
    Ran,
    SettableClock,
    SmtpServer,
    alembic_config,
    bearer,
    client_for,
    free_port,
    login,
    login_status,
    make_settings,
    refresh_status,
    register,
    start_session,
)

__all__ = [
    "PASSWORD",
    "Account",
    "AccountFactory",
    "Operator",
    "Ran",
    "SmtpServer",
    "alembic_config",
    "bearer",
    "client_for",
    "free_port",
    "login",
    "login_status",
    "make_settings",
    "refresh_status",
    "register",
    "run_jobs",
    "start_session",
]

SEEDED_TABLES = {"roles", "role_permissions"}
BUILTIN_ROLES = (ADMIN_ROLE, MEMBER_ROLE)
AccountFactory = Callable[..., Awaitable[Account]]


# Set by pytest-xdist in each worker ("gw0", "gw1", ...); unset in a run without -n.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("TEST_REDIS_URL") and config.getoption("numprocesses", None):
        # Every test flushes that database: workers would flush each other's counters.
        raise pytest.UsageError("TEST_REDIS_URL names one Redis database: run without -n")


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite in this run's temporary directory, or TEST_DATABASE_URL.

    Under pytest-xdist each worker gets a database of its own on that server,
    named after it with the worker's id, created when missing.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        path = Path(tmp_path_factory.mktemp("db")) / "test.db"
        return f"sqlite+aiosqlite:///{path}"
    if XDIST_WORKER is None:
        return url
    given = make_url(url)
    worker_url = given.set(database=f"{given.database}_{XDIST_WORKER}")
    server = create_async_engine(given, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with server.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": worker_url.database},
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{worker_url.database}"'))
    finally:
        await server.dispose()
    return worker_url.render_as_string(hide_password=False)


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


@pytest.fixture(scope="session")
def session_clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def clock(session_clock: SettableClock) -> Iterator[SettableClock]:
    """The clock of `app` and of every `app_factory` app: real time until a test moves it."""
    session_clock.resume()
    yield session_clock
    session_clock.resume()


@pytest.fixture
def app_factory(settings: Settings, clock: SettableClock) -> Callable[..., FastAPI]:
    """A new app of the test's own, with `overrides` on the suite's settings."""

    def build(**overrides: object) -> FastAPI:
        return create_app(
            settings.model_copy(update=overrides) if overrides else settings, clock=clock
        )

    return build


@pytest.fixture(scope="session")
def shared_app(settings: Settings, session_clock: SettableClock) -> FastAPI:
    return create_app(settings, clock=session_clock)


@pytest.fixture
async def app(
    shared_app: FastAPI, settings: Settings, clock: SettableClock
) -> AsyncIterator[FastAPI]:
    """The suite's app with a lifespan of this test's own. Add no routes to it."""
    # Another test's app may have logged at another level or format.
    configure_logging(settings)
    routes = len(shared_app.router.routes)
    async with LifespanManager(shared_app):
        yield shared_app
    assert len(shared_app.router.routes) == routes, "routes added to the shared app"


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

    Written through the repositories (tests/factories.py) with a hash made once
    per run: two argon2 hashes fewer per account than registering and logging
    in, which tests/auth/ does over HTTP.
    """

    async def make(email: str | None = None, *, roles: tuple[str, ...] = ()) -> Account:
        return await create_account(resources, password_hash, email, roles=roles)

    return make


@pytest.fixture
def make_registered_account(client: httpx.AsyncClient, resources: Resources) -> AccountFactory:
    """Register and log in over HTTP, for tests of what those two record (audit events)."""

    async def make(email: str | None = None, *, roles: tuple[str, ...] = ()) -> Account:
        email = email or new_email()
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
def operator(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Operator:
    """`main(args)` with `env` set and `stdin` as standard input, as `python -m app` runs it."""

    async def run(*args: str, env: dict[str, str], stdin: str = "") -> Ran:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            # main runs its own event loop: a thread of its own, off the test's.
            returncode = await asyncio.to_thread(main, list(args))
        except SystemExit as exit_:
            # What the interpreter does with SystemExit: a message goes to stderr, status 1.
            if isinstance(exit_.code, int) or exit_.code is None:
                returncode = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
                returncode = 1
        said = capsys.readouterr()
        return Ran(returncode, said.out, said.err)

    return run


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


@pytest.fixture
def smtp_server() -> Iterator[tuple[SmtpServer, int]]:
    """A real SMTP server on a free loopback port: its handler and the port."""
    server, port = SmtpServer(), free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield server, port
    finally:
        server.gate.set()
        controller.stop()
