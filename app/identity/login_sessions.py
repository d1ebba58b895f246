"""Login sessions and their refresh tokens: start, rotate, end.

Below the account features, so that any of them (a password change, an
admin deactivating a user, logging in) can start or end login sessions
without depending on another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, auto

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security.opaque import digest, new_secret
from app.identity.models import LoginSession, RefreshToken
from app.identity.repository import LoginSessionRepository


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    session_id: uuid.UUID
    user_id: uuid.UUID
    token: str


class Rotation(Enum):
    ROTATED = auto()
    UNKNOWN = auto()
    REUSED = auto()
    ENDED = auto()


@dataclass(frozen=True, slots=True)
class RotationResult:
    outcome: Rotation
    issued: IssuedRefresh | None = None
    session_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None


class LoginSessions:
    """Joins the caller's transaction; never commits."""

    def __init__(self, session: AsyncSession, *, refresh_ttl_seconds: int) -> None:
        self.sessions = LoginSessionRepository(session)
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)

    async def start(self, user_id: uuid.UUID, now: datetime) -> IssuedRefresh:
        login_session = LoginSession(user_id=user_id, expires_at=now + self.refresh_ttl)
        await self.sessions.add(login_session)
        return await self._issue(login_session, now)

    async def _issue(self, login_session: LoginSession, now: datetime) -> IssuedRefresh:
        token, token_digest = new_secret()
        await self.sessions.add(
            RefreshToken(session_id=login_session.id, token_digest=token_digest, created_at=now)
        )
        return IssuedRefresh(login_session.id, login_session.user_id, token)

    async def rotate(self, token: str, now: datetime) -> RotationResult:
        """Spend a refresh token for a new one of the same session.

        A token presented after it was spent is reuse: someone holds a copy,
        so the whole session, including the newest token, is ended.
        """
        found = await self.sessions.refresh_token_with_session(digest(token))
        if found is None:
            return RotationResult(Rotation.UNKNOWN)
        refresh, login_session = found
        session_id, user_id = login_session.id, login_session.user_id
        if login_session.revoked_at is not None or login_session.expires_at <= now:
            return RotationResult(Rotation.ENDED, session_id=session_id, user_id=user_id)
        if refresh.spent_at is not None or not await self.sessions.spend(refresh.id, now):
            await self.sessions.revoke(login_session.id, "refresh_reuse", now)
            return RotationResult(Rotation.REUSED, session_id=session_id, user_id=user_id)
        issued = await self._issue(login_session, now)
        return RotationResult(
            Rotation.ROTATED, issued=issued, session_id=session_id, user_id=user_id
        )

    async def end_by_refresh_token(self, token: str, now: datetime) -> uuid.UUID | None:
        """End the session a refresh token belongs to; its user's id, if any."""
        found = await self.sessions.refresh_token_with_session(digest(token))
        if found is None:
            return None
        _, login_session = found
        await self.sessions.revoke(login_session.id, "logout", now)
        return login_session.user_id

    async def end_all(
        self, user_id: uuid.UUID, reason: str, now: datetime, *, keep: uuid.UUID | None = None
    ) -> None:
        await self.sessions.revoke_all(user_id, reason, now, keep=keep)
