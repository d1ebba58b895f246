from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.identity.models import LoginSession, PasswordResetToken, RefreshToken


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
