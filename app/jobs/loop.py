"""The job loop without a queue: claim due jobs from the outbox and run them in this process.

This is what `make run` does with no REDIS_URL: nothing else has to be
started. Several such processes on one PostgreSQL share the work: each
claims different rows (SKIP LOCKED), and a row is run by whoever takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from app.core.metrics import WORKER_HEARTBEAT
from app.jobs.runner import JobRunner
from app.jobs.schedule import Scheduler

log = structlog.get_logger(__name__)


class Heartbeat:
    """When the job loop last went round: liveness fails when it stops beating."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()
        WORKER_HEARTBEAT.set(time.time())

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._last < self.timeout_seconds


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def housekeeping(runner: JobRunner, scheduler: Scheduler) -> None:
    """The schedule's jobs written, the gauges refreshed; an outage is logged, not raised."""
    try:
        await scheduler.tick()
        await runner.refresh_stats()
    except Exception as exc:
        log.warning("jobs.housekeeping_failed", error=type(exc).__name__)


async def run_in_process(
    runner: JobRunner, scheduler: Scheduler, stop: asyncio.Event, heartbeat: Heartbeat
) -> None:
    """Until `stop`: the current job is finished, jobs claimed but not begun are handed back."""
    poll = runner.settings.jobs_poll_seconds
    log.info("jobs.in_process_started", poll_seconds=poll)
    while not stop.is_set():
        heartbeat.beat()
        await housekeeping(runner, scheduler)
        ran = 0
        try:
            ids = await runner.claim()
            for index, message_id in enumerate(ids):
                if stop.is_set():
                    await runner.release(ids[index:])
                    break
                await runner.run(message_id)
                heartbeat.beat()
                ran += 1
        except Exception as exc:
            log.warning("jobs.loop_failed", error=type(exc).__name__)
        if ran < runner.settings.jobs_batch_size:
            await wait_or_stop(stop, poll)
    log.info("jobs.in_process_stopped")
