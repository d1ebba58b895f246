"""One retention run: every purge of the catalogue, once, at one `now`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from time import perf_counter

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.metrics import RETENTION_DELETED
from app.retention.purges import PURGES, Purge

log = structlog.get_logger(__name__)


async def run_retention(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime,
    purges: Sequence[tuple[str, Purge]] = PURGES,
) -> dict[str, int]:
    """Run each purge in turn; the rows each deleted, by kind.

    A purge that fails stops the run, after a `retention.failed` line: the
    batches it and the purges before it committed stay deleted, and the
    next run picks up where this one stopped.
    """
    started = perf_counter()
    deleted: dict[str, int] = {}
    for kind, purge in purges:
        try:
            count = await purge(sessionmaker, settings, now=now)
        except Exception as exc:
            log.error("retention.failed", kind=kind, error=type(exc).__name__, deleted=deleted)
            raise
        # Incremented by 0 too, so every kind has a series from the first run.
        RETENTION_DELETED.labels(kind=kind).inc(count)
        deleted[kind] = count
    log.info(
        "retention.purged",
        deleted=deleted,
        total=sum(deleted.values()),
        duration_ms=round((perf_counter() - started) * 1000, 2),
    )
    return deleted
