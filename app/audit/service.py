"""Reading the audit trail (writing it is `AuditTrail`'s, inside each action's transaction)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.repository import AuditRepository
from app.audit.schemas import AuditEventRead
from app.core.pagination import CursorCodec, Page


class AuditService:
    def __init__(self, session: AsyncSession, cursors: CursorCodec) -> None:
        self.events = AuditRepository(session)
        self.cursors = cursors

    async def list_page(
        self,
        *,
        action: str | None,
        actor_id: uuid.UUID | None,
        cursor: str | None,
        limit: int,
    ) -> Page[AuditEventRead]:
        after = self.cursors.decode(cursor) if cursor else None
        rows, position = await self.events.list_page(
            action=action, actor_id=actor_id, after=after, limit=limit
        )
        return Page[AuditEventRead](
            items=[AuditEventRead.model_validate(row) for row in rows],
            next_cursor=self.cursors.encode(position) if position else None,
        )
