"""Scheduled jobs: a line each in registry.SCHEDULE, run once a period however many processes tick.

Every process that runs jobs ticks the scheduler. A period's job is an
outbox row whose id is derived from the kind and the period's start, so
the first process to insert it wins and the others' inserts are no-ops:
no leader, no lock, and a job missed while everything was down runs at the
next tick of its period.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from app.core.resources import Resources
from app.jobs.runner import Clock
from app.outbox.models import OutboxMessage
from app.outbox.repository import OutboxRepository

log = structlog.get_logger(__name__)

_NAMESPACE = uuid.UUID("6f1c2a3e-58d4-4d1b-9a51-0c6c1f1b7a10")


@dataclass(frozen=True, slots=True)
class Scheduled:
    """Run the job `kind` once every `every`, at the start of each period (UTC, from the epoch)."""

    kind: str
    every: timedelta

    def period_start(self, now: datetime) -> datetime:
        seconds = self.every.total_seconds()
        return datetime.fromtimestamp(now.timestamp() // seconds * seconds, UTC)

    def job_id(self, period_start: datetime) -> uuid.UUID:
        return uuid.uuid5(_NAMESPACE, f"{self.kind}@{period_start.isoformat()}")


class Scheduler:
    def __init__(
        self, resources: Resources, schedule: Sequence[Scheduled], *, clock: Clock | None = None
    ) -> None:
        self.resources = resources
        self.schedule = schedule
        self.clock = clock or resources.clock.now
        # The period each kind was last written for by this process: one insert per period.
        self._written: dict[str, datetime] = {}

    async def tick(self) -> int:
        """Write the current period's job of every entry not yet written; how many were new."""
        now = self.clock()
        written = 0
        for entry in self.schedule:
            start = entry.period_start(now)
            if self._written.get(entry.kind) == start:
                continue
            async with self.resources.sessionmaker() as session:
                added = await OutboxRepository(session).add_once(
                    OutboxMessage(
                        id=entry.job_id(start),
                        kind=entry.kind,
                        payload={"period_start": start.isoformat()},
                        available_at=start,
                        created_at=now,
                        origin={},
                    )
                )
                await session.commit()
            self._written[entry.kind] = start
            if added:
                written += 1
                log.info("job.scheduled", job_kind=entry.kind, period_start=start.isoformat())
        return written
