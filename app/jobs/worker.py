"""`python -m app worker`: the relay, the queue's consumer and the scheduler, in one process.

The relay claims due outbox rows (FOR UPDATE SKIP LOCKED on PostgreSQL, so
several workers take different rows) and puts their ids on the queue in
Redis; consumers run them, JOBS_CONCURRENCY at a time. A row queued but not
started within JOBS_REQUEUE_AFTER_SECONDS is queued again, which is how the
queue is rebuilt after Redis loses it. Without REDIS_URL the worker runs the
jobs itself, as the API process would.

SIGTERM or SIGINT drains: readiness turns 503, no job is taken any more, the
jobs running are finished (each within JOBS_TIMEOUT_SECONDS), then it exits.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import structlog
from opentelemetry import trace
from taskiq import AsyncTaskiqDecoratedTask
from taskiq.receiver import Receiver

from app.core.resources import Resources
from app.jobs.loop import Heartbeat, housekeeping, run_in_process, wait_or_stop
from app.jobs.probes import probe_app, probe_server
from app.jobs.queue import TASK_NAME, JobQueue
from app.jobs.registry import HANDLERS, SCHEDULE
from app.jobs.runner import Clock, JobRunner
from app.jobs.schedule import Scheduled, Scheduler
from app.outbox.job import Handler

log = structlog.get_logger(__name__)

RunJob = AsyncTaskiqDecoratedTask[[str], Coroutine[Any, Any, str]]
# Beyond a job's own timeout, what a drain allows for the last jobs to be settled.
_SETTLE_SECONDS = 10.0


class Worker:
    def __init__(
        self,
        resources: Resources,
        *,
        tracer: trace.Tracer | None = None,
        handlers: Mapping[str, Handler] = HANDLERS,
        schedule: Sequence[Scheduled] = SCHEDULE,
        clock: Clock | None = None,
    ) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.runner = JobRunner(resources, handlers, tracer=tracer, clock=clock)
        self.scheduler = Scheduler(resources, schedule, clock=clock)
        self.heartbeat = Heartbeat(self.settings.worker_heartbeat_timeout_seconds)
        self.stop = asyncio.Event()
        self.taking_jobs = False

    def ready(self) -> bool:
        return self.taking_jobs and not self.stop.is_set() and self.heartbeat.alive

    def drain(self) -> None:
        if not self.stop.is_set():
            log.info("worker.draining")
            self.stop.set()

    async def serve(self) -> None:
        """Run until drained, with the probe server on WORKER_HOST:WORKER_PORT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.drain)
        server = probe_server(
            probe_app(self.resources, alive=lambda: self.heartbeat.alive, ready=self.ready),
            self.settings.worker_host,
            self.settings.worker_port,
        )
        probes = asyncio.create_task(server.serve())
        try:
            await self.run()
        finally:
            server.should_exit = True
            await probes
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def run(self) -> None:
        url = self.settings.redis_url
        log.info("worker.started", queue="redis" if url else "none")
        if url is None:
            self.taking_jobs = True
            await run_in_process(self.runner, self.scheduler, self.stop, self.heartbeat)
            return
        queue = JobQueue(url, timeout_seconds=self.settings.redis_timeout_seconds)
        queue.is_worker_process = True
        runner = self.runner

        async def run_job(message_id: str) -> str:
            # A plain function: taskiq renames what it registers, which a bound method refuses.
            return await runner.run(uuid.UUID(message_id))

        task = queue.register_task(run_job, task_name=TASK_NAME)
        await queue.startup()
        receiver = Receiver(
            queue,
            max_async_tasks=self.settings.jobs_concurrency,
            run_startup=False,
            validate_params=False,
            wait_tasks_timeout=self.settings.jobs_timeout_seconds + _SETTLE_SECONDS,
        )
        finished = asyncio.Event()
        consuming = asyncio.create_task(receiver.listen(finished))
        try:
            await self._relay(queue, task, consuming)
        finally:
            # No new job is taken; the running ones are finished before this returns.
            finished.set()
            await consuming
            await queue.shutdown()
            log.info("worker.drained")

    async def _relay(self, queue: JobQueue, task: RunJob, consuming: asyncio.Task[None]) -> None:
        batch = self.settings.jobs_batch_size
        while not self.stop.is_set():
            if consuming.done():
                raise RuntimeError("the queue's consumer stopped") from consuming.exception()
            self.heartbeat.beat()
            self.taking_jobs = True
            await housekeeping(self.runner, self.scheduler)
            queued = await self._queue_due(task) if await self._room_in(queue) else 0
            if queued < batch:
                await wait_or_stop(self.stop, self.settings.jobs_poll_seconds)

    async def _room_in(self, queue: JobQueue) -> bool:
        """Whether to hand out more: a backlog waits in the outbox, not in Redis.

        Ids that waited in Redis past JOBS_REQUEUE_AFTER_SECONDS would be
        queued a second time; a short queue keeps that for when it is lost.
        """
        try:
            return await queue.depth() < self.settings.jobs_batch_size
        except Exception as exc:
            log.warning("jobs.queue_unreachable", error=type(exc).__name__)
            return False

    async def _queue_due(self, task: RunJob) -> int:
        try:
            ids = await self.runner.claim()
        except Exception as exc:
            log.warning("jobs.claim_failed", error=type(exc).__name__)
            return 0
        for index, message_id in enumerate(ids):
            try:
                await task.kiq(str(message_id))
            except Exception as exc:
                # Handed back at once rather than after the requeue delay.
                log.warning("jobs.enqueue_failed", error=type(exc).__name__)
                try:
                    await self.runner.release(ids[index:])
                except Exception as release_error:
                    log.warning("jobs.release_failed", error=type(release_error).__name__)
                return index
        return len(ids)
