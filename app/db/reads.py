"""Core reads on a session's connection, in one crossing into SQLAlchemy's synchronous layer.

The asyncio extension runs SQLAlchemy's synchronous core in a greenlet.
`await (await session.connection()).execute(...)` crosses into it twice,
once to check the connection out and once to run the statement, and wraps
the connection in a new async proxy on the way: about a quarter of what a
short read costs the event loop. `read` crosses once, and shapes the rows
while it is there, so nothing but plain values comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

T = TypeVar("T")


async def read(
    session: AsyncSession,
    statement: Executable,
    parameters: Mapping[str, Any],
    shape: Callable[[CursorResult[Any]], T],
) -> T:
    """`shape` of the result of `statement`, run on the session's connection and transaction."""

    def run(sync_session: Session) -> T:
        return shape(sync_session.connection().execute(statement, parameters))

    return await session.run_sync(run)


def as_dicts(result: CursorResult[Any]) -> list[dict[str, Any]]:
    """Each row as a dict of its columns: what pydantic validates fastest."""
    columns = tuple(result.keys())
    return [dict(zip(columns, row, strict=True)) for row in result]


def as_tuples(result: CursorResult[Any]) -> list[tuple[Any, ...]]:
    """Each row as a plain tuple of its columns."""
    return [tuple(row) for row in result]
