from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.context import USER_AGENT_MAX_LENGTH
from app.db.base import Base, UUIDPrimaryKey
from app.db.types import utcnow


class AuditEvent(UUIDPrimaryKey, Base):
    """Who did what to what, from where. Append-only.

    `actor_id` and `target_id` carry no foreign key: the trail outlives the
    accounts it mentions, and deleting a user must not delete its history.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_created_at_id", "created_at", "id"),
        Index("ix_audit_events_actor_id_created_at", "actor_id", "created_at"),
        Index("ix_audit_events_target_id", "target_id"),
        Index("ix_audit_events_action_created_at", "action", "created_at"),
    )

    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None]
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX_LENGTH))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
