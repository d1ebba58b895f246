"""One purge per kind of row that outlives its use, and the catalogue of them.

Each purge works out its cutoff from the `now` it is given and its setting,
then deletes in bounded batches through the owning feature's repository.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.repository import AuditRepository
from app.core.config import Settings
from app.db.batches import delete_in_batches
from app.idempotency.repository import IdempotencyRepository
from app.identity.repository import LoginSessionRepository, ResetTokenRepository
from app.outbox.purge import purge_sent_outbox


class Purge(Protocol):
    """Delete what is past its time at `now`; how many rows went."""

    async def __call__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        /,
        *,
        now: datetime,
    ) -> int: ...


async def purge_refresh_tokens(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> int:
    """Refresh tokens of the login sessions `purge_login_sessions` deletes."""
    ended_before = now - timedelta(days=settings.login_session_retention_days)

    async def one_batch(session: AsyncSession, limit: int) -> int:
        sessions = LoginSessionRepository(session)
        return await sessions.delete_refresh_tokens_of_ended(ended_before, now, limit=limit)

    return await delete_in_batches(
        sessionmaker, one_batch, batch_size=settings.retention_batch_size
    )


async def purge_login_sessions(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> int:
    """Login sessions expired or revoked LOGIN_SESSION_RETENTION_DAYS ago, once expired."""
    ended_before = now - timedelta(days=settings.login_session_retention_days)

    async def one_batch(session: AsyncSession, limit: int) -> int:
        return await LoginSessionRepository(session).delete_ended(ended_before, now, limit=limit)

    return await delete_in_batches(
        sessionmaker, one_batch, batch_size=settings.retention_batch_size
    )


async def purge_password_reset_tokens(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> int:
    """Reset tokens used or expired PASSWORD_RESET_RETENTION_DAYS ago."""
    dead_before = now - timedelta(days=settings.password_reset_retention_days)

    async def one_batch(session: AsyncSession, limit: int) -> int:
        return await ResetTokenRepository(session).delete_dead(dead_before, limit=limit)

    return await delete_in_batches(
        sessionmaker, one_batch, batch_size=settings.retention_batch_size
    )


async def purge_idempotency_records(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> int:
    """Stored answers older than IDEMPOTENCY_TTL_SECONDS, which no retry replays any more."""
    created_before = now - timedelta(seconds=settings.idempotency_ttl_seconds)

    async def one_batch(session: AsyncSession, limit: int) -> int:
        return await IdempotencyRepository(session).delete_expired(created_before, limit=limit)

    return await delete_in_batches(
        sessionmaker, one_batch, batch_size=settings.retention_batch_size
    )


async def purge_audit_events(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> int:
    """Audit events older than AUDIT_RETENTION_DAYS; none while it is 0 (keep forever)."""
    if settings.audit_retention_days == 0:
        return 0
    created_before = now - timedelta(days=settings.audit_retention_days)

    async def one_batch(session: AsyncSession, limit: int) -> int:
        return await AuditRepository(session).delete_older_than(created_before, limit=limit)

    return await delete_in_batches(
        sessionmaker, one_batch, batch_size=settings.retention_batch_size
    )


# What `run_retention` runs, in order, by kind (the `kind` of its metric and
# log line). Refresh tokens go before their sessions, in batches of their own.
PURGES: tuple[tuple[str, Purge], ...] = (
    ("refresh_tokens", purge_refresh_tokens),
    ("login_sessions", purge_login_sessions),
    ("password_reset_tokens", purge_password_reset_tokens),
    ("idempotency_records", purge_idempotency_records),
    ("audit_events", purge_audit_events),
    ("outbox_messages", purge_sent_outbox),
)
