"""Deleting done jobs once JOBS_KEEP_FINISHED_SECONDS have passed: one of the retention purges."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.db.batches import delete_in_batches
from app.outbox.repository import OutboxRepository


async def purge_sent_outbox(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> int:
    """How many done rows were deleted. Dead rows stay until retried or looked at."""
    cutoff = now - timedelta(seconds=settings.jobs_keep_finished_seconds)

    async def one_batch(session: AsyncSession, limit: int) -> int:
        return await OutboxRepository(session).delete_finished_before(cutoff, limit=limit)

    return await delete_in_batches(
        sessionmaker, one_batch, batch_size=settings.retention_batch_size
    )
