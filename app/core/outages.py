"""Which database failures are outages: the server's state, not the request's fault.

An outage answers 503 with Retry-After (the handler is in errors.py); any
other database error is a bug and stays a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exc as sa_exc


class DatabaseUnreachable(Exception):
    """No connection to the database could be opened: refused, timed out or turned away.

    Raised by the engine in place of whatever the driver raised (kept as the
    cause); the message is only the name of that error, never its text.
    """


# The exceptions `database_outage` judges: registered as one handler family.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUnreachable,
    sa_exc.TimeoutError,
    sa_exc.DBAPIError,
)


@dataclass(frozen=True, slots=True)
class Outage:
    reason: str
    detail: str
    retry_after_seconds: int


_UNREACHABLE = Outage("unreachable", "The database cannot be reached; retry shortly.", 5)
_CONNECTION_LOST = Outage(
    "connection-lost", "The connection to the database was lost; retry shortly.", 5
)
_POOL_EXHAUSTED = Outage("pool-exhausted", "Every database connection is busy; retry shortly.", 2)
_STATEMENT_TIMEOUT = Outage(
    "statement-timeout", "The database did not answer in time; retry shortly.", 2
)
_LOCKED = Outage("locked", "The database is busy; retry shortly.", 2)
# Another transaction won: PostgreSQL rolled this one back, and the same
# request sent again normally goes through.
_CONTENTION = Outage(
    "contention", "The database chose this request to give way to another; retry it.", 1
)

# SQLSTATEs that blame the server's state, not the request. Class 08 (a
# broken connection) is matched by its prefix.
_OUTAGE_SQLSTATES = {
    "57014": _STATEMENT_TIMEOUT,  # query_canceled: statement_timeout, or an operator
    "55P03": _STATEMENT_TIMEOUT,  # lock_not_available: lock_timeout
    "57P01": _CONNECTION_LOST,  # admin_shutdown
    "57P02": _CONNECTION_LOST,  # crash_shutdown
    "57P03": _UNREACHABLE,  # cannot_connect_now: starting up or shutting down
    "53300": _UNREACHABLE,  # too_many_connections
    "40P01": _CONTENTION,  # deadlock_detected
    "40001": _CONTENTION,  # serialization_failure
}
# SQLite's primary result codes for "another connection holds the lock".
_SQLITE_BUSY_CODES = {5, 6}


def sqlstate_of(error: BaseException | None) -> str | None:
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return code if isinstance(code, str) else None


def _sqlite_code(error: BaseException | None) -> int | None:
    while error is not None:
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF
        error = error.__cause__
    return None


def database_outage(exc: BaseException) -> Outage | None:
    """What keeps the database from serving this request, or None for any other error.

    A bug (bad SQL, a violated constraint nobody caught) is None and stays a 500.
    """
    if isinstance(exc, DatabaseUnreachable):
        return _UNREACHABLE
    if isinstance(exc, sa_exc.TimeoutError):
        return _POOL_EXHAUSTED
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    # Set when the driver reports a disconnect; SQLAlchemy has then dropped
    # this connection and marked every older pooled one for replacement.
    if exc.connection_invalidated:
        return _CONNECTION_LOST
    sqlstate = sqlstate_of(exc.orig)
    if sqlstate is not None:
        if sqlstate.startswith("08"):
            return _CONNECTION_LOST
        return _OUTAGE_SQLSTATES.get(sqlstate)
    if _sqlite_code(exc.orig) in _SQLITE_BUSY_CODES:
        return _LOCKED
    return None


def driver_error_name(exc: Exception) -> str:
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return type(exc.orig).__name__
    if isinstance(exc, DatabaseUnreachable) and exc.args:
        return str(exc.args[0])
    return type(exc).__name__
