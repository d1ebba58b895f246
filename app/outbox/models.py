from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKey
from app.db.types import utcnow

PENDING = "pending"
DONE = "done"
DEAD = "dead"
ERROR_MAX_LENGTH = 200


class OutboxMessage(UUIDPrimaryKey, Base):
    """One job to run because a change committed; its id is the job's key everywhere.

    The row is the job's truth: the queue only carries its id, so a queue
    that loses everything is refilled from here.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status_available_at", "status", "available_at"),)

    kind: Mapped[str] = mapped_column(String(64))
    # What to do and for whom; never a secret (a token is made when the job runs).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # Not before: the next attempt's time after a failure.
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Handed to the queue until then; past it, queued again.
    enqueued_until: Mapped[datetime | None]
    # Taken by a worker until then; past it, the worker is presumed gone.
    running_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(String(ERROR_MAX_LENGTH))
    # The request that made the job, so its logs and spans join the request's.
    request_id: Mapped[str | None] = mapped_column(String(64))
    # ip and user agent of that request, and its W3C trace context.
    origin: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
