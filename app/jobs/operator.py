"""The operator's view of dead jobs: list them, send them back to be tried again."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.types import utcnow
from app.outbox.repository import OutboxRepository

LIST_LIMIT = 100


async def list_dead(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    """One line per dead job, newest first: id, kind, attempts, when it died, the last error."""
    async with sessionmaker() as session:
        dead = await OutboxRepository(session).dead(LIST_LIMIT + 1)
    lines = [
        f"{job.id}  {job.kind}  attempts={job.attempts}  "
        f"died={job.finished_at.isoformat() if job.finished_at else '?'}  "
        f"error={job.last_error or '?'}  request_id={job.request_id or '-'}"
        for job in dead[:LIST_LIMIT]
    ]
    if len(dead) > LIST_LIMIT:
        lines.append(f"… (first {LIST_LIMIT} shown)")
    return lines


async def retry_dead(
    sessionmaker: async_sessionmaker[AsyncSession], ids: Sequence[uuid.UUID] | None
) -> int:
    """These dead jobs (or every one, for None) pending again, with a fresh count of attempts."""
    async with sessionmaker() as session:
        count = await OutboxRepository(session).retry_dead(ids, utcnow())
        await session.commit()
    return count
