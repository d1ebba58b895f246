"""The outbox promises: a job exists exactly when its change committed, and runs once per row."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.core.context import SYSTEM_CONTEXT, RequestContext
from app.core.resources import Resources
from app.db.types import utcnow
from app.jobs.runner import JobRunner
from app.jobs.schedule import Scheduled, Scheduler
from app.outbox.job import Job
from app.outbox.models import OutboxMessage
from app.outbox.purge import purge_sent_outbox
from app.outbox.repository import OutboxRepository
from app.outbox.writer import Outbox
from tests.helpers import SettableClock

KIND = "test.record"


class Recorder:
    """A handler that notes every job it runs; it yields once, so runs can interleave."""

    def __init__(self) -> None:
        self.ran: list[uuid.UUID] = []

    async def __call__(self, _resources: Resources, job: Job) -> None:
        await asyncio.sleep(0)
        self.ran.append(job.id)


async def queue(
    resources: Resources, count: int, context: RequestContext = SYSTEM_CONTEXT
) -> list[uuid.UUID]:
    async with resources.sessionmaker() as session:
        outbox = Outbox(session, context)
        ids = [outbox.add(KIND, {"n": n}).id for n in range(count)]
        await session.commit()
    return ids


async def rows(resources: Resources) -> list[OutboxMessage]:
    async with resources.sessionmaker() as session:
        return list(await session.scalars(select(OutboxMessage)))


async def test_a_rolled_back_change_leaves_no_job(resources: Resources) -> None:
    recorder = Recorder()
    async with resources.sessionmaker() as session:
        Outbox(session, SYSTEM_CONTEXT).add(KIND, {"n": 1})
        await session.flush()
        await session.rollback()

    assert await rows(resources) == []
    assert await JobRunner(resources, {KIND: recorder}).run_due() == 0
    assert recorder.ran == []


async def test_a_committed_job_runs_once_however_often_it_is_handed_out(
    resources: Resources,
) -> None:
    recorder = Recorder()
    [job_id] = await queue(resources, 1)
    runner = JobRunner(resources, {KIND: recorder})

    outcomes = [await runner.run(job_id), await runner.run(job_id)]

    assert outcomes == ["done", "skipped"]
    assert recorder.ran == [job_id]


async def test_two_relays_deliver_each_row_once(resources: Resources) -> None:
    recorder = Recorder()
    ids = await queue(resources, 30)
    first = JobRunner(resources, {KIND: recorder})
    second = JobRunner(resources, {KIND: recorder})

    async def drain(runner: JobRunner) -> None:
        while await runner.run_due(limit=4):
            pass

    await asyncio.gather(drain(first), drain(second))

    assert Counter(recorder.ran) == Counter(ids)
    assert {row.status for row in await rows(resources)} == {"done"}


async def test_a_job_left_running_by_a_dead_worker_is_taken_again_after_its_timeout(
    resources: Resources,
) -> None:
    recorder = Recorder()
    [job_id] = await queue(resources, 1)
    clock = SettableClock()
    clock.stop()
    runner = JobRunner(resources, {KIND: recorder}, clock=clock.now)
    # A worker claimed the row and took it, then vanished without a word.
    async with resources.sessionmaker() as session:
        await OutboxRepository(session).start(
            job_id, clock.now(), clock.now() + timedelta(seconds=90)
        )
        await session.commit()

    assert await runner.run_due() == 0
    clock.advance(resources.settings.jobs_requeue_after_seconds + 91)
    assert await runner.run_due() == 1
    assert recorder.ran == [job_id]


async def test_jobs_carry_the_request_id_of_the_request_that_made_them(
    resources: Resources,
) -> None:
    seen: list[RequestContext] = []

    async def note(_resources: Resources, job: Job) -> None:
        seen.append(job.context)

    context = RequestContext.of("203.0.113.9", "agent/1", "a" * 32)
    await queue(resources, 1, context)
    await JobRunner(resources, {KIND: note}).run_due()

    assert seen == [context]


async def test_an_unknown_kind_is_retried_then_dead(resources: Resources) -> None:
    await queue(resources, 1)
    clock = SettableClock()
    clock.stop()
    settings = resources.settings.model_copy(
        update={"jobs_max_attempts": 2, "jobs_retry_base_seconds": 5}
    )
    runner = JobRunner(dataclasses.replace(resources, settings=settings), {}, clock=clock.now)
    assert await runner.run_due() == 1
    clock.advance(5)
    assert await runner.run_due() == 1
    [row] = await rows(resources)
    assert (row.status, row.last_error) == ("dead", "UnknownJob")


async def test_a_scheduled_job_is_written_once_a_period_by_any_number_of_schedulers(
    resources: Resources,
) -> None:
    every = Scheduled("test.hourly", every=timedelta(hours=1))
    clock = SettableClock()
    clock.stop(datetime(2026, 1, 1, 10, 15, tzinfo=UTC))
    one, other = (
        Scheduler(resources, [every], clock=clock.now),
        Scheduler(resources, [every], clock=clock.now),
    )

    assert [await one.tick(), await other.tick(), await one.tick()] == [1, 0, 0]
    clock.advance(3600)
    assert [await other.tick(), await one.tick()] == [1, 0]
    starts = sorted(row.available_at for row in await rows(resources))
    assert [start.hour for start in starts] == [10, 11]
    assert {start.minute for start in starts} == {0}


@pytest.mark.parametrize("batch", [1, 1000])
async def test_the_purge_deletes_done_jobs_past_their_time_and_nothing_else(
    resources: Resources, batch: int
) -> None:
    settings = resources.settings.model_copy(
        update={"jobs_keep_finished_seconds": 86_400, "retention_batch_size": batch}
    )
    now = utcnow()
    ids = await queue(resources, 5)
    old_done, old_done_2, fresh_done, dead, pending = ids
    async with resources.sessionmaker() as session:
        repository = OutboxRepository(session)
        await repository.finish(old_done, now - timedelta(days=2))
        await repository.finish(old_done_2, now - timedelta(seconds=86_401))
        await repository.finish(fresh_done, now - timedelta(seconds=86_399))
        await repository.fail(dead, now - timedelta(days=30), "Boom", retry_at=None)
        await session.commit()

    deleted = await purge_sent_outbox(resources.sessionmaker, settings, now=now)

    assert deleted == 2
    assert {row.id for row in await rows(resources)} == {fresh_done, dead, pending}
