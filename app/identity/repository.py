from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.batches import delete_batch
from app.identity.models import LoginSession, PasswordResetToken, RefreshToken


def _ended_by(ended_before: datetime, now: datetime) -> ColumnElement[bool]:
    """Login sessions that ended (expired, or were revoked) at or before `ended_before`.

    Never one whose own expiry is still ahead, even if revoked long ago:
    until then a copy of its refresh token is within its lifetime, and its
    rows (the spent tokens among them) are what tell such a token apart as
    belonging to an ended login rather than as unknown.
    """
    return and_(
        LoginSession.expires_at <= now,
        or_(LoginSession.expires_at <= ended_before, LoginSession.revoked_at <= ended_before),
    )


class LoginSessionRepository:
    """Login sessions and their refresh tokens."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *rows: LoginSession | RefreshToken) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def refresh_token_with_session(
        self, digest: str
    ) -> tuple[RefreshToken, LoginSession] | None:
        statement = (
            select(RefreshToken, LoginSession)
            .join(LoginSession, LoginSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_digest == digest)
        )
        row = (await self.session.execute(statement)).first()
        return (row[0], row[1]) if row is not None else None

    async def spend(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Mark a refresh token spent; False if it already was.

        One conditional UPDATE: of two concurrent refreshes with one token,
        the database lets exactly one match `spent_at IS NULL`.
        """
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.spent_at.is_(None))
            .values(spent_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def revoke(self, session_id: uuid.UUID, reason: str, now: datetime) -> None:
        await self.session.execute(
            update(LoginSession)
            .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )

    async def revoke_all(
        self, user_id: uuid.UUID, reason: str, now: datetime, *, keep: uuid.UUID | None = None
    ) -> None:
        statement = (
            update(LoginSession)
            .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
        if keep is not None:
            statement = statement.where(LoginSession.id != keep)
        await self.session.execute(statement)

    async def delete_refresh_tokens_of_ended(
        self, ended_before: datetime, now: datetime, *, limit: int
    ) -> int:
        """Delete up to `limit` refresh tokens of sessions `_ended_by`; how many went.

        Apart from their sessions, so that one long login's thousands of
        rotated tokens never make one large transaction.
        """
        ended = select(LoginSession.id).where(_ended_by(ended_before, now))
        return await delete_batch(
            self.session, RefreshToken, RefreshToken.session_id.in_(ended), limit
        )

    async def delete_ended(self, ended_before: datetime, now: datetime, *, limit: int) -> int:
        """Delete up to `limit` sessions `_ended_by` (tokens left go by cascade); how many went."""
        return await delete_batch(self.session, LoginSession, _ended_by(ended_before, now), limit)


class ResetTokenRepository:
    """Password reset tokens: one per request for a reset mail, spent by any password change."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: PasswordResetToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def get(self, digest: str) -> PasswordResetToken | None:
        result: PasswordResetToken | None = await self.session.scalar(
            select(PasswordResetToken).where(PasswordResetToken.token_digest == digest)
        )
        return result

    async def void_all(self, user_id: uuid.UUID, now: datetime) -> set[uuid.UUID]:
        """Spend every unused reset token of a user; the ids of those it spent.

        One conditional UPDATE: of two concurrent callers, the one that waits
        for the other's row locks finds nothing left to spend.
        """
        result = await self.session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now)
            .returning(PasswordResetToken.id)
            .execution_options(synchronize_session=False)
        )
        return set(result.scalars())

    async def delete_dead(self, dead_before: datetime, *, limit: int) -> int:
        """Delete up to `limit` tokens used or expired at or before `dead_before`; how many went."""
        dead = or_(
            PasswordResetToken.used_at <= dead_before,
            PasswordResetToken.expires_at <= dead_before,
        )
        return await delete_batch(self.session, PasswordResetToken, dead, limit)
