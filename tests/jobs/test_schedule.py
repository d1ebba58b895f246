"""The app's own schedule: retention runs as a scheduled job, through the outbox like any other."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.core.context import SYSTEM_CONTEXT
from app.core.resources import Resources
from app.db.types import utcnow
from app.jobs.registry import HANDLERS, RETENTION, SCHEDULE
from app.jobs.runner import JobRunner
from app.jobs.schedule import Scheduler
from app.outbox.models import OutboxMessage
from app.outbox.repository import OutboxRepository
from app.outbox.writer import Outbox


async def test_retention_is_scheduled_hourly_and_its_job_purges_what_is_past_its_time(
    resources: Resources,
) -> None:
    now = utcnow()
    keep = timedelta(seconds=resources.settings.jobs_keep_finished_seconds)
    async with resources.sessionmaker() as session:
        outbox = Outbox(session, SYSTEM_CONTEXT)
        old = outbox.add("test.old", {}).id
        recent = outbox.add("test.recent", {}).id
        await session.commit()
    async with resources.sessionmaker() as session:
        repository = OutboxRepository(session)
        await repository.finish(old, now - keep - timedelta(seconds=1))
        await repository.finish(recent, now - keep + timedelta(seconds=1))
        await session.commit()

    assert any(entry.kind == RETENTION and entry.every == timedelta(hours=1) for entry in SCHEDULE)
    assert await Scheduler(resources, SCHEDULE, clock=lambda: now).tick() == len(SCHEDULE)
    assert await JobRunner(resources, HANDLERS, clock=lambda: now).run_due() == len(SCHEDULE)

    async with resources.sessionmaker() as session:
        left = {row.id: row for row in await session.scalars(select(OutboxMessage))}
    assert old not in left
    assert recent in left
    (retention,) = [row for row in left.values() if row.kind == RETENTION]
    assert retention.status == "done"
