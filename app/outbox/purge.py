"""Deleting jobs that are done once JOBS_KEEP_FINISHED_SECONDS have passed, in bounded batches."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.outbox.repository import OutboxRepository


async def purge_sent_outbox(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> int:
    """How many done rows were deleted. Dead rows stay until retried or looked at.

    One short transaction per batch of JOBS_PURGE_BATCH_SIZE rows, so a large
    backlog never holds a lock on the table for long.
    """
    cutoff = now - timedelta(seconds=settings.jobs_keep_finished_seconds)
    deleted = 0
    while True:
        async with sessionmaker() as session:
            batch = await OutboxRepository(session).delete_finished_before(
                cutoff, settings.jobs_purge_batch_size
            )
            await session.commit()
        deleted += batch
        if batch < settings.jobs_purge_batch_size:
            return deleted
