"""Rows with chosen timestamps, written through the repositories, and what is left of them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.audit.repository import AuditRepository
from app.core.config import Settings
from app.core.resources import Resources
from app.idempotency.models import IdempotencyRecord
from app.idempotency.repository import IdempotencyRepository
from app.identity.models import LoginSession, PasswordResetToken, RefreshToken
from app.identity.repository import LoginSessionRepository, ResetTokenRepository

# The purges' clock: before any real time a test runs at, so rows the
# fixtures make with the real clock (an account's live session) lie ahead of it.
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
# The smallest step both backends store.
TICK = timedelta(microseconds=1)


def retention_settings(resources: Resources, **overrides: Any) -> Settings:
    return resources.settings.model_copy(update=overrides)


async def add_login_session(
    resources: Resources,
    user_id: uuid.UUID,
    *,
    expires_at: datetime,
    revoked_at: datetime | None = None,
    refresh_tokens: int = 2,
) -> uuid.UUID:
    """A login session and its refresh tokens, all but the newest spent, as rotation leaves them."""
    async with resources.sessionmaker() as session:
        sessions = LoginSessionRepository(session)
        login = LoginSession(
            user_id=user_id,
            expires_at=expires_at,
            revoked_at=revoked_at,
            revoked_reason=None if revoked_at is None else "logout",
        )
        await sessions.add(login)
        for n in range(refresh_tokens):
            spent = n < refresh_tokens - 1
            await sessions.add(
                RefreshToken(
                    session_id=login.id,
                    token_digest=uuid.uuid4().hex + uuid.uuid4().hex,
                    created_at=expires_at - timedelta(days=1),
                    spent_at=expires_at - timedelta(hours=1) if spent else None,
                )
            )
        await session.commit()
        return login.id


async def add_reset_token(
    resources: Resources, user_id: uuid.UUID, *, expires_at: datetime, used_at: datetime | None
) -> uuid.UUID:
    async with resources.sessionmaker() as session:
        token = PasswordResetToken(
            user_id=user_id,
            token_digest=uuid.uuid4().hex + uuid.uuid4().hex,
            created_at=expires_at - timedelta(minutes=30),
            expires_at=expires_at,
            used_at=used_at,
        )
        await ResetTokenRepository(session).add(token)
        await session.commit()
        return token.id


async def add_idempotency_record(
    resources: Resources, owner_id: uuid.UUID, *, created_at: datetime
) -> uuid.UUID:
    async with resources.sessionmaker() as session:
        records = IdempotencyRepository(session)
        record = IdempotencyRecord(
            owner_id=owner_id,
            scope="items.create",
            key=uuid.uuid4().hex,
            request_hash="0" * 64,
            created_at=created_at,
        )
        assert await records.try_insert(record)
        await records.complete(record, status=201, body={"id": "x"})
        await session.commit()
        return record.id


async def add_audit_event(resources: Resources, *, created_at: datetime) -> uuid.UUID:
    async with resources.sessionmaker() as session:
        events = AuditRepository(session)
        event = AuditEvent(action="auth.login", actor_id=None, created_at=created_at)
        events.add(event)
        await events.flush()
        await session.commit()
        return event.id


async def ids_of(resources: Resources, entity: type[Any]) -> set[uuid.UUID]:
    async with resources.sessionmaker() as session:
        return set(await session.scalars(select(entity.id)))


async def refresh_token_sessions(resources: Resources) -> list[uuid.UUID]:
    """The session of every refresh token left, one entry per token."""
    async with resources.sessionmaker() as session:
        return sorted(await session.scalars(select(RefreshToken.session_id)))
