"""Writing jobs: in the caller's transaction, like the audit trail, never on their own.

A change that rolls back takes its jobs with it; a change that commits
cannot lose them. Callers own the commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.context import RequestContext
from app.outbox.models import OutboxMessage
from app.outbox.repository import OutboxRepository

_TRACE_CONTEXT = TraceContextTextMapPropagator()


class Outbox:
    """Joins the caller's transaction; never commits."""

    def __init__(self, session: AsyncSession, context: RequestContext) -> None:
        self.messages = OutboxRepository(session)
        self.context = context

    def add(
        self, kind: str, payload: dict[str, Any], *, now: datetime | None = None
    ) -> OutboxMessage:
        """A job of `kind` with `payload`, which must hold nothing secret, due at once.

        It carries the request's id and trace context (`traceparent`), so
        the worker's logs and spans join the request's. `now` is the app's
        clock where the caller has it, so the job is due by the same time
        the runner reads; without it, the row's defaults take the real time.
        """
        origin: dict[str, Any] = {}
        _TRACE_CONTEXT.inject(origin)
        if self.context.ip is not None:
            origin["ip"] = self.context.ip
        if self.context.user_agent is not None:
            origin["user_agent"] = self.context.user_agent
        # The id is known at once: a caller may name the job before the commit.
        message = OutboxMessage(
            id=uuid.uuid4(),
            kind=kind,
            payload=payload,
            request_id=self.context.request_id,
            origin=origin,
        )
        if now is not None:
            message.created_at = message.available_at = now
        self.messages.add(message)
        return message
