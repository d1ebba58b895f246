"""Deleting a backlog in bounded batches, each batch its own short transaction.

One DELETE of a million rows holds every row lock it takes until it
commits, and a failure half-way undoes it all. In batches, a transaction
holds at most `limit` rows at a time, requests touching the table wait a
moment at most, and what a purge interrupted half-way already did stays done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import UUIDPrimaryKey

# Deletes one batch of at most `limit` rows in the session it is given; how many it deleted.
BatchDelete = Callable[[AsyncSession, int], Awaitable[int]]


async def delete_batch(
    session: AsyncSession,
    entity: type[UUIDPrimaryKey],
    condition: ColumnElement[bool],
    limit: int,
) -> int:
    """Delete at most `limit` rows of `entity` matching `condition`; how many went.

    DELETE takes no LIMIT on PostgreSQL, so the ids are chosen in a subquery.
    SKIP LOCKED leaves rows another transaction holds (a purge in another
    process, a request using the row) to a later batch instead of waiting
    for them; SQLite, with one writer at a time, has no row locks and no
    such clause.
    """
    chosen = select(entity.id).where(condition).limit(limit).with_for_update(skip_locked=True)
    result = await session.execute(
        delete(entity).where(entity.id.in_(chosen)).execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount


async def delete_in_batches(
    sessionmaker: async_sessionmaker[AsyncSession], one_batch: BatchDelete, *, batch_size: int
) -> int:
    """Run `one_batch` in a transaction of its own until a batch comes back short; the total.

    A short batch means nothing matching was left, or what was left is held
    by someone else (SKIP LOCKED): the next run takes it.
    """
    total = 0
    while True:
        async with sessionmaker() as session:
            deleted = await one_batch(session, batch_size)
            await session.commit()
        total += deleted
        if deleted < batch_size:
            return total
