"""Keyset pagination over (created_at, id), newest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.core.pagination import Position


class Keyed(Protocol):
    created_at: Any
    id: Any


M = TypeVar("M", bound=Keyed)


async def keyset_page(
    session: AsyncSession,
    statement: Select[M],
    model: type[M],
    *,
    after: Position | None,
    limit: int,
) -> tuple[Sequence[M], Position | None]:
    """One page of `statement` plus the position to continue from, if any.

    The composite index on (created_at, id) makes every page an index range
    scan, however deep: no OFFSET.
    """
    created_at: InstrumentedAttribute[Any] = model.created_at
    row_id: InstrumentedAttribute[Any] = model.id
    if after is not None:
        statement = statement.where(tuple_(created_at, row_id) < (after.created_at, after.id))
    statement = statement.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
    rows = (await session.scalars(statement)).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], Position(last.created_at, last.id)
