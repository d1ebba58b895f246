from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.core.pagination import Position
from app.db.batches import delete_batch
from app.db.pagination import keyset_page


def _about(user_id: uuid.UUID) -> ColumnElement[bool]:
    """Events a user did, or that were done to them."""
    return or_(AuditEvent.actor_id == user_id, AuditEvent.target_id == str(user_id))


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, event: AuditEvent) -> None:
        # Flushed with the action's own changes at commit: one transaction.
        self.session.add(event)

    async def flush(self) -> None:
        await self.session.flush()

    async def list_page(
        self,
        *,
        action: str | None,
        actor_id: uuid.UUID | None,
        after: Position | None,
        limit: int,
    ) -> tuple[Sequence[AuditEvent], Position | None]:
        statement = select(AuditEvent)
        if action is not None:
            statement = statement.where(AuditEvent.action == action)
        if actor_id is not None:
            statement = statement.where(AuditEvent.actor_id == actor_id)
        return await keyset_page(self.session, statement, AuditEvent, after=after, limit=limit)

    async def about_user(self, user_id: uuid.UUID) -> Sequence[AuditEvent]:
        statement = (
            select(AuditEvent)
            .where(_about(user_id))
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        )
        return (await self.session.scalars(statement)).all()

    async def scrub_user(self, user_id: uuid.UUID) -> None:
        """Drop what could identify a deleted user; the bare events stay for the record.

        Every event it did or that was done to it loses its origin (ip, user
        agent); events about it lose their details too. What it did to others
        keeps its details and names it by id, so deleting an account cannot
        erase its own doings.
        """
        await self.session.execute(
            update(AuditEvent).where(_about(user_id)).values(ip=None, user_agent=None)
        )
        await self.session.execute(
            update(AuditEvent).where(AuditEvent.target_id == str(user_id)).values(details={})
        )

    async def delete_older_than(self, created_before: datetime, *, limit: int) -> int:
        """Delete up to `limit` events recorded before `created_before`; how many went."""
        return await delete_batch(
            self.session, AuditEvent, AuditEvent.created_at < created_before, limit
        )
