"""Engine and session factory, built from settings inside the app's lifespan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from app.core.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    database_url = make_url(url or settings.database_url)
    options: dict[str, Any] = {
        "echo": settings.db_echo,
        # Statement parameters hold emails, password hashes and token digests;
        # keep them out of error messages and echo, which reach the logs.
        "hide_parameters": True,
        "pool_pre_ping": settings.db_pool_pre_ping,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_recycle": settings.db_pool_recycle_seconds,
    }
    if database_url.get_backend_name() == "sqlite":
        if database_url.database and database_url.database != ":memory:":
            Path(database_url.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_async_engine(database_url, **options)
        _configure_sqlite(engine)
        return engine
    if database_url.get_backend_name() == "postgresql":
        options["connect_args"] = {
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {"application_name": "groundwork"},
        }
    return create_async_engine(database_url, **options)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Make the embedded SQLite behave like a real transactional database.

    Foreign keys are off by default in SQLite. The driver's own transaction
    handling defers BEGIN, so two writers that both read first deadlock into
    "database is locked"; taking the write lock at BEGIN (IMMEDIATE) makes
    writers queue on the busy timeout instead. Fine for the embedded default;
    production runs PostgreSQL.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: responses are built after the
    # service has committed.
    return async_sessionmaker(engine, expire_on_commit=False)


def create_probe_engine(settings: Settings) -> AsyncEngine:
    """An engine for the readiness check alone, outside the request pool.

    A full pool must not make a healthy replica look dead, and a probe must
    not take a connection a request is waiting for: each check opens its own
    connection and closes it (no pool), so nothing is kept open and nothing
    is added to the connection budget between checks. No SQLite BEGIN
    IMMEDIATE either: `SELECT 1` must not wait for the write lock.
    """
    database_url = make_url(settings.database_url)
    connect_args: dict[str, Any] = {}
    if database_url.get_backend_name() == "sqlite":
        connect_args["timeout"] = settings.health_check_timeout_seconds
    elif database_url.get_backend_name() == "postgresql":
        connect_args["timeout"] = settings.health_check_timeout_seconds
        connect_args["server_settings"] = {"application_name": "groundwork-health"}
    return create_async_engine(
        database_url, poolclass=NullPool, hide_parameters=True, connect_args=connect_args
    )


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
