"""Every query of the outbox. Each method joins the caller's transaction; the caller commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.batches import delete_batch
from app.outbox.models import DEAD, DONE, ERROR_MAX_LENGTH, PENDING, OutboxMessage


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    oldest_pending_at: datetime | None
    dead: int


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, message: OutboxMessage) -> None:
        self.session.add(message)

    async def add_once(self, message: OutboxMessage) -> bool:
        """Insert unless a row has this id already (another scheduler was first)."""
        try:
            async with self.session.begin_nested():
                self.session.add(message)
        except IntegrityError:
            return False
        return True

    async def claim_due(self, now: datetime, limit: int, until: datetime) -> list[uuid.UUID]:
        """Due rows nobody holds, marked as handed to the queue until `until`.

        On PostgreSQL the rows are locked and others' locked rows skipped, so
        several relays each take different rows; SQLite's write lock, taken
        at BEGIN, lets one relay in at a time.
        """
        due = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == PENDING,
                OutboxMessage.available_at <= now,
                or_(OutboxMessage.enqueued_until.is_(None), OutboxMessage.enqueued_until <= now),
                or_(OutboxMessage.running_until.is_(None), OutboxMessage.running_until <= now),
            )
            .order_by(OutboxMessage.available_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self.session.scalars(due))
        if ids:
            await self.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(enqueued_until=until)
                .execution_options(synchronize_session=False)
            )
        return ids

    async def release(self, ids: Sequence[uuid.UUID]) -> None:
        """Hand rows back at once, when the queue would not take them."""
        await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == PENDING)
            .values(enqueued_until=None)
            .execution_options(synchronize_session=False)
        )

    async def start(
        self, message_id: uuid.UUID, now: datetime, until: datetime
    ) -> OutboxMessage | None:
        """Take the row to run it, unless it is finished, not yet due, or running elsewhere.

        One conditional UPDATE: of two workers handed the same id, one wins.
        """
        taken = await self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == PENDING,
                OutboxMessage.available_at <= now,
                or_(OutboxMessage.running_until.is_(None), OutboxMessage.running_until <= now),
            )
            .values(running_until=until)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(taken, CursorResult)
        if taken.rowcount != 1:
            return None
        message: OutboxMessage | None = await self.session.scalar(
            select(OutboxMessage).where(OutboxMessage.id == message_id)
        )
        return message

    async def finish(self, message_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(
                status=DONE,
                attempts=OutboxMessage.attempts + 1,
                finished_at=now,
                running_until=None,
                enqueued_until=None,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )

    async def fail(
        self, message_id: uuid.UUID, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Count the failed attempt: due again at `retry_at`, or dead without one."""
        await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(
                status=PENDING if retry_at is not None else DEAD,
                attempts=OutboxMessage.attempts + 1,
                available_at=retry_at if retry_at is not None else OutboxMessage.available_at,
                finished_at=None if retry_at is not None else now,
                running_until=None,
                enqueued_until=None,
                last_error=error[:ERROR_MAX_LENGTH],
            )
            .execution_options(synchronize_session=False)
        )

    async def stats(self) -> OutboxStats:
        pending = await self.session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status == PENDING
            )
        )
        count, oldest = pending.one()
        dead = await self.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == DEAD)
        )
        return OutboxStats(pending=count, oldest_pending_at=oldest, dead=dead or 0)

    async def dead(self, limit: int) -> list[OutboxMessage]:
        rows = await self.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == DEAD)
            .order_by(OutboxMessage.finished_at.desc(), OutboxMessage.id)
            .limit(limit)
        )
        return list(rows)

    async def retry_dead(self, ids: Sequence[uuid.UUID] | None, now: datetime) -> int:
        """Dead rows (these, or all) pending again with a fresh count of attempts."""
        statement = update(OutboxMessage).where(OutboxMessage.status == DEAD)
        if ids is not None:
            statement = statement.where(OutboxMessage.id.in_(ids))
        result = await self.session.execute(
            statement.values(
                status=PENDING, attempts=0, available_at=now, finished_at=None
            ).execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount

    async def delete_finished_before(self, cutoff: datetime, *, limit: int) -> int:
        """Up to `limit` done rows finished before `cutoff`; dead rows stay to be looked at."""
        return await delete_batch(
            self.session,
            OutboxMessage,
            (OutboxMessage.status == DONE) & (OutboxMessage.finished_at < cutoff),
            limit,
        )
