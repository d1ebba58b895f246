"""The audit trail: written inside the caller's transaction, never on its own.

An action that rolls back takes its event with it; an action that commits
cannot lose its event. Every feature records through `AuditTrail`, so it
sits below them all; callers own the commit.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.repository import AuditRepository
from app.audit.schemas import AuditAction, AuditEventRead
from app.core.context import RequestContext


class AuditTrail:
    """Joins the caller's transaction; never commits."""

    def __init__(self, session: AsyncSession, context: RequestContext) -> None:
        self.events = AuditRepository(session)
        self.context = context

    def record(
        self,
        action: AuditAction,
        *,
        actor_id: uuid.UUID | None,
        target_type: str | None = None,
        target_id: uuid.UUID | str | None = None,
        details: dict[str, Any] | None = None,
        with_origin: bool = True,
    ) -> None:
        """Add an event to the caller's transaction; `with_origin=False` leaves out ip and agent."""
        self.events.add(
            AuditEvent(
                action=action.value,
                actor_id=actor_id,
                target_type=target_type,
                target_id=str(target_id) if target_id is not None else None,
                ip=self.context.ip if with_origin else None,
                user_agent=self.context.user_agent if with_origin else None,
                request_id=self.context.request_id,
                details=details or {},
            )
        )

    async def flush(self) -> None:
        """Write the events recorded so far, so that reads in this transaction see them."""
        await self.events.flush()

    async def for_subject(self, user_id: uuid.UUID) -> list[AuditEventRead]:
        """Events about a user, as that user may see them.

        Where someone else acted (an admin, or an unknown party such as a
        stranger guessing the password), the origin is that party's personal
        data, not the user's: ip and user agent are left out.
        """
        events = [AuditEventRead.model_validate(e) for e in await self.events.about_user(user_id)]
        return [
            event
            if event.actor_id == user_id
            else event.model_copy(update={"ip": None, "user_agent": None})
            for event in events
        ]

    async def scrub_user(self, user_id: uuid.UUID) -> None:
        await self.events.scrub_user(user_id)
