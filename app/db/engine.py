"""Engine and session factory, built from settings inside the app's lifespan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from app.core.config import Settings
from app.core.outages import DatabaseUnreachable, database_outage
from app.db.pool import FairAsyncQueuePool

log = structlog.get_logger(__name__)

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
        # SQLAlchemy's asyncio pool, handing connections out in the order asked for.
        "poolclass": FairAsyncQueuePool,
    }
    if database_url.get_backend_name() == "sqlite":
        # No statement timeout in SQLite; a transaction waits at most the busy
        # timeout for the lock, then fails as "database is locked" (a 503).
        if database_url.database and database_url.database != ":memory:":
            Path(database_url.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_async_engine(database_url, **options)
        _configure_sqlite(engine)
    else:
        if database_url.get_backend_name() == "postgresql":
            options["connect_args"] = {
                "timeout": settings.db_connect_timeout_seconds,
                "server_settings": _postgres_server_settings(settings),
                **_pgbouncer_connect_args(settings),
            }
        engine = create_async_engine(database_url, **options)
        if settings.db_pgbouncer and database_url.get_backend_name() == "postgresql":
            _time_out_each_transaction(engine, settings.db_statement_timeout_seconds)
    _mark_connect_failures(engine)
    _recognise_disconnects(engine)
    return engine


def _postgres_server_settings(settings: Settings) -> dict[str, str]:
    server_settings = {"application_name": "groundwork"}
    if settings.db_statement_timeout_seconds > 0 and not settings.db_pgbouncer:
        # Sent with the connection, so every statement of every session is
        # bounded without a round trip.
        server_settings["statement_timeout"] = str(
            _milliseconds(settings.db_statement_timeout_seconds)
        )
    return server_settings


def _milliseconds(seconds: float) -> int:
    # PostgreSQL takes milliseconds; 0 would mean "no timeout".
    return max(1, round(seconds * 1000))


def _pgbouncer_connect_args(settings: Settings) -> dict[str, Any]:
    """Driver arguments for PgBouncer's transaction pooling; none without it.

    A named prepared statement lives on one server connection, and the next
    transaction may run on another, or another client may reuse the name on
    this one. With both caches off (asyncpg's own and SQLAlchemy's), asyncpg
    prepares each statement unnamed, inside the transaction that runs it.
    """
    if not settings.db_pgbouncer:
        return {}
    return {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


def _time_out_each_transaction(engine: AsyncEngine, timeout_seconds: float) -> None:
    """Bound every statement when the timeout cannot be sent at connect.

    `SET LOCAL` lasts until the end of the transaction, so it never leaks to
    the next client of the same server connection; it costs one round trip
    per transaction.
    """
    if timeout_seconds <= 0:
        return
    statement = f"SET LOCAL statement_timeout = {_milliseconds(timeout_seconds)}"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(statement)


def _mark_connect_failures(engine: AsyncEngine) -> None:
    """Tell "no connection could be opened" apart from every other database error.

    A refused or timed-out connect surfaces as a bare OSError or TimeoutError,
    a rejection by the server (starting up, closed to connections, too many
    clients) as a driver error: none of them says "the database is not
    there" by its type. Raised as one type here, they are answered 503.
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            raise DatabaseUnreachable(type(exc).__name__) from exc


# A connection the server ended: class 08 (connection exception) and the
# shutdown codes. asyncpg reports some of them as ordinary errors.
_DISCONNECT_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def _recognise_disconnects(engine: AsyncEngine) -> None:
    """Treat every error that means "this connection is gone" as a disconnect.

    SQLAlchemy then drops the connection and marks every older pooled one for
    replacement, so recovery after a database restart does not depend on
    DB_POOL_PRE_PING: the request that meets a dead connection gets 503, the
    next ones get fresh connections.
    """

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        sqlstate = getattr(context.original_exception, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_DISCONNECT_SQLSTATES):
            context.is_disconnect = True


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


class _Session(AsyncSession):
    async def close(self) -> None:
        """Close; a connection the database dropped meanwhile is discarded, not an error.

        Closing rolls back what was not committed. When the server has ended
        the connection since the last statement (a restart, a terminated
        backend), the server has already rolled it back: the request's
        answer stands, and the connection leaves the pool.
        """
        try:
            await super().close()
        except DBAPIError as exc:
            if database_outage(exc) is None:
                raise
            log.warning("database.connection_lost_on_close", error=type(exc.orig).__name__)
            await self.invalidate()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: responses are built after the
    # service has committed.
    return async_sessionmaker(engine, class_=_Session, expire_on_commit=False)


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
        connect_args.update(_pgbouncer_connect_args(settings))
    return create_async_engine(
        database_url, poolclass=NullPool, hide_parameters=True, connect_args=connect_args
    )


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
