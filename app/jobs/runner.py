"""Running one outbox job, and the claims that hand jobs out safely to many processes.

Every state a job passes through lives in its outbox row, never only in
Redis: attempts, the time of the next retry, dead. A queue that loses
everything delays jobs, it loses none.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import structlog
from asgi_correlation_id import correlation_id
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.core.context import RequestContext
from app.core.metrics import (
    JOB_DURATION,
    JOBS,
    JOBS_DEAD,
    JOBS_OLDEST_PENDING_AGE,
    JOBS_PENDING,
)
from app.core.resources import Resources
from app.outbox.job import Handler, Job
from app.outbox.models import OutboxMessage
from app.outbox.repository import OutboxRepository, OutboxStats

log = structlog.get_logger(__name__)

_TRACE_CONTEXT = TraceContextTextMapPropagator()
_TRACE_FIELDS = _TRACE_CONTEXT.fields
# A running job's claim outlives its timeout by this much, so a job that
# ends on time is never taken over by another worker while it finishes.
_CLAIM_MARGIN_SECONDS = 30.0

Clock = Callable[[], datetime]


class UnknownJob(Exception):
    """No handler for this kind (a row written by a newer release, say): retried, then dead."""


class JobRunner:
    def __init__(
        self,
        resources: Resources,
        handlers: Mapping[str, Handler],
        *,
        tracer: trace.Tracer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.handlers = handlers
        self.tracer = tracer or trace.NoOpTracer()
        self.clock = clock or resources.clock.now

    def retry_delay(self, failed_attempts: int) -> float | None:
        """Seconds until the next attempt after `failed_attempts` failures; None: dead."""
        s = self.settings
        if failed_attempts >= s.jobs_max_attempts:
            return None
        return float(
            min(s.jobs_retry_base_seconds * 2 ** (failed_attempts - 1), s.jobs_retry_max_seconds)
        )

    async def claim(self, limit: int | None = None) -> list[uuid.UUID]:
        """Due jobs nobody holds, held for this caller for JOBS_REQUEUE_AFTER_SECONDS."""
        now = self.clock()
        until = now + timedelta(seconds=self.settings.jobs_requeue_after_seconds)
        async with self.resources.sessionmaker() as session:
            ids = await OutboxRepository(session).claim_due(
                now, limit or self.settings.jobs_batch_size, until
            )
            await session.commit()
        return ids

    async def release(self, ids: list[uuid.UUID]) -> None:
        async with self.resources.sessionmaker() as session:
            await OutboxRepository(session).release(ids)
            await session.commit()

    async def run_due(self, limit: int | None = None) -> int:
        """Claim due jobs and run them here, one after another (the in-process runner)."""
        ids = await self.claim(limit)
        for message_id in ids:
            await self.run(message_id)
        return len(ids)

    async def run(self, message_id: uuid.UUID) -> str:
        """One attempt at the job; its outcome (one of JOB_OUTCOMES).

        Safe to call twice for one id, from two processes: only one takes
        the row, and a finished row is never run again.
        """
        started_job = await self._start(message_id)
        if started_job is None:
            JOBS.labels(kind="", outcome="skipped").inc()
            return "skipped"
        job, trace_context = started_job
        started = time.perf_counter()
        # Every log line of the job carries the request's id, as the request's own did.
        request = correlation_id.set(job.context.request_id)
        try:
            with (
                structlog.contextvars.bound_contextvars(job_id=str(job.id), job_kind=job.kind),
                self._span(job, trace_context) as span,
            ):
                error = await self._call(job, span)
                outcome = await self._settle(job, error)
                if error is None:
                    log.info("job.done", attempt=job.attempts + 1)
                else:
                    log.warning(
                        "job.failed", attempt=job.attempts + 1, error=error, outcome=outcome
                    )
        finally:
            correlation_id.reset(request)
        JOBS.labels(kind=job.kind, outcome=outcome).inc()
        JOB_DURATION.labels(kind=job.kind).observe(time.perf_counter() - started)
        return outcome

    async def _call(self, job: Job, span: trace.Span) -> str | None:
        """Run the handler within the timeout; the failure's class name, or None."""
        try:
            handler = self.handlers.get(job.kind)
            if handler is None:
                raise UnknownJob(job.kind)
            async with asyncio.timeout(self.settings.jobs_timeout_seconds):
                await handler(self.resources, job)
        except Exception as exc:
            error = type(exc).__name__
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, error)
            return error
        return None

    async def refresh_stats(self) -> OutboxStats:
        """The queue's depth, its oldest job's age and the dead count, into the gauges."""
        async with self.resources.sessionmaker() as session:
            stats = await OutboxRepository(session).stats()
        JOBS_PENDING.set(stats.pending)
        JOBS_DEAD.set(stats.dead)
        oldest = stats.oldest_pending_at
        JOBS_OLDEST_PENDING_AGE.set(
            max(0.0, (self.clock() - oldest).total_seconds()) if oldest is not None else 0.0
        )
        return stats

    async def _start(self, message_id: uuid.UUID) -> tuple[Job, dict[str, str]] | None:
        """The job, taken, and the trace context of the request that made it."""
        now = self.clock()
        until = now + timedelta(seconds=self.settings.jobs_timeout_seconds + _CLAIM_MARGIN_SECONDS)
        async with self.resources.sessionmaker() as session:
            message = await OutboxRepository(session).start(message_id, now, until)
            if message is None:
                return None
            job = _job_of(message, now)
            trace_context = {
                key: value
                for key, value in message.origin.items()
                if key in _TRACE_FIELDS and isinstance(value, str)
            }
            await session.commit()
        return job, trace_context

    async def _settle(self, job: Job, error: str | None) -> str:
        now = self.clock()
        async with self.resources.sessionmaker() as session:
            repository = OutboxRepository(session)
            if error is None:
                await repository.finish(job.id, now)
                outcome = "done"
            else:
                delay = self.retry_delay(job.attempts + 1)
                retry_at = now + timedelta(seconds=delay) if delay is not None else None
                await repository.fail(job.id, now, error, retry_at)
                outcome = "retry" if retry_at is not None else "dead"
            await session.commit()
        return outcome

    def _span(self, job: Job, trace_context: dict[str, str]) -> AbstractContextManager[trace.Span]:
        """A span of its own, a child of the request's span when the request was traced."""
        parent = _TRACE_CONTEXT.extract(trace_context)
        return self.tracer.start_as_current_span(
            f"job {job.kind}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "job.id": str(job.id),
                "job.kind": job.kind,
                "job.attempt": job.attempts + 1,
                **({"request_id": job.context.request_id} if job.context.request_id else {}),
            },
        )


def _job_of(message: OutboxMessage, now: datetime) -> Job:
    origin = message.origin or {}
    ip, agent = origin.get("ip"), origin.get("user_agent")
    return Job(
        id=message.id,
        kind=message.kind,
        payload=dict(message.payload),
        attempts=message.attempts,
        context=RequestContext.of(
            ip if isinstance(ip, str) else None,
            agent if isinstance(agent, str) else None,
            message.request_id,
        ),
        now=now,
    )
