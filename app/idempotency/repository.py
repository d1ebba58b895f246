from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.batches import delete_batch
from app.idempotency.models import IdempotencyRecord


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def try_insert(self, record: IdempotencyRecord) -> bool:
        """Insert unless the key is taken; False when another request holds it."""
        try:
            # A savepoint, so a duplicate key does not abort the caller's transaction.
            async with self.session.begin_nested():
                self.session.add(record)
        except IntegrityError:
            return False
        return True

    async def get(self, owner_id: uuid.UUID, scope: str, key: str) -> IdempotencyRecord | None:
        statement = select(IdempotencyRecord).where(
            IdempotencyRecord.owner_id == owner_id,
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
        )
        result: IdempotencyRecord | None = await self.session.scalar(statement)
        return result

    async def delete_older_than(
        self, owner_id: uuid.UUID, scope: str, key: str, cutoff: datetime
    ) -> None:
        await self.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.owner_id == owner_id,
                IdempotencyRecord.scope == scope,
                IdempotencyRecord.key == key,
                IdempotencyRecord.created_at < cutoff,
            )
        )

    async def delete_expired(self, created_before: datetime, *, limit: int) -> int:
        """Delete up to `limit` records, of any key, created before `created_before`.

        The same boundary as `delete_older_than`: a record is replayed until
        then, and only a record no claim would replay any more goes.
        """
        return await delete_batch(
            self.session, IdempotencyRecord, IdempotencyRecord.created_at < created_before, limit
        )

    async def complete(
        self, record: IdempotencyRecord, *, status: int, body: dict[str, Any]
    ) -> None:
        record.response_status = status
        record.response_body = body
        await self.session.flush()
