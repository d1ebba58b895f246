"""Each purge deletes exactly what is past its time at the injected `now`, and keeps the rest.

Rows sit a microsecond either side of each boundary; the clock is `NOW`,
never the real one.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from prometheus_client import REGISTRY

from app.audit.models import AuditEvent
from app.core.resources import Resources
from app.idempotency.models import IdempotencyRecord
from app.identity.models import LoginSession, PasswordResetToken
from app.retention import PURGES, run_retention
from tests.conftest import AccountFactory
from tests.retention.rows import (
    NOW,
    TICK,
    add_audit_event,
    add_idempotency_record,
    add_login_session,
    add_reset_token,
    ids_of,
    refresh_token_sessions,
    retention_settings,
)

NOTHING = {kind: 0 for kind, _ in PURGES}


async def test_login_sessions_and_their_tokens_go_once_ended_past_the_grace_and_expired(
    resources: Resources, make_account: AccountFactory
) -> None:
    account = await make_account()  # its own session is live: it must stay
    before = await ids_of(resources, LoginSession)
    settings = retention_settings(resources, login_session_retention_days=7)
    cutoff = NOW - timedelta(days=7)
    gone: set[uuid.UUID] = set()
    kept: set[uuid.UUID] = set()
    for expires_at, revoked_at, expected in [
        (cutoff - TICK, None, gone),  # expired before the grace began
        (cutoff, None, gone),  # expired as it began
        (cutoff + TICK, None, kept),  # expired within the grace
        (NOW - TICK, cutoff - TICK, gone),  # logged out before the grace, expired since
        # Logged out long ago but its tokens' lifetime is not over: kept for reuse detection.
        (NOW + TICK, cutoff - TICK, kept),
        (NOW - TICK, cutoff + TICK, kept),  # logged out within the grace
        (cutoff - TICK, NOW - TICK, gone),  # expired long ago, revoked since (log out everywhere)
        (NOW + timedelta(days=30), None, kept),  # live, with a spent token
    ]:
        login = await add_login_session(
            resources, account.id, expires_at=expires_at, revoked_at=revoked_at
        )
        expected.add(login)

    deleted = await run_retention(resources.sessionmaker, settings, now=NOW)

    assert deleted == {**NOTHING, "login_sessions": len(gone), "refresh_tokens": 2 * len(gone)}
    assert await ids_of(resources, LoginSession) == before | kept
    left = await refresh_token_sessions(resources)
    assert sorted(set(left)) == sorted(before | kept)
    assert all(left.count(login) == 2 for login in kept)


async def test_reset_tokens_go_once_used_or_expired_past_the_grace(
    resources: Resources, make_account: AccountFactory
) -> None:
    account = await make_account()
    settings = retention_settings(resources, password_reset_retention_days=2)
    cutoff = NOW - timedelta(days=2)
    live = NOW + timedelta(minutes=10)
    gone = {
        await add_reset_token(resources, account.id, expires_at=live, used_at=cutoff - TICK),
        await add_reset_token(resources, account.id, expires_at=live, used_at=cutoff),
        await add_reset_token(resources, account.id, expires_at=cutoff - TICK, used_at=None),
        await add_reset_token(resources, account.id, expires_at=cutoff, used_at=None),
    }
    kept = {
        await add_reset_token(resources, account.id, expires_at=live, used_at=cutoff + TICK),
        await add_reset_token(resources, account.id, expires_at=cutoff + TICK, used_at=None),
        await add_reset_token(resources, account.id, expires_at=live, used_at=None),
    }

    deleted = await run_retention(resources.sessionmaker, settings, now=NOW)

    assert deleted == {**NOTHING, "password_reset_tokens": len(gone)}
    assert await ids_of(resources, PasswordResetToken) == kept


async def test_idempotency_records_go_once_no_retry_would_replay_them(
    resources: Resources, make_account: AccountFactory
) -> None:
    account = await make_account()
    settings = retention_settings(resources, idempotency_ttl_seconds=3600)
    expiry = NOW - timedelta(seconds=3600)
    gone = {await add_idempotency_record(resources, account.id, created_at=expiry - TICK)}
    kept = {
        # Still replayed by a claim at NOW (the claim drops only older ones).
        await add_idempotency_record(resources, account.id, created_at=expiry),
        await add_idempotency_record(resources, account.id, created_at=expiry + TICK),
        await add_idempotency_record(resources, account.id, created_at=NOW),
    }

    deleted = await run_retention(resources.sessionmaker, settings, now=NOW)

    assert deleted == {**NOTHING, "idempotency_records": len(gone)}
    assert await ids_of(resources, IdempotencyRecord) == kept


async def test_audit_events_are_kept_forever_by_default(resources: Resources) -> None:
    assert resources.settings.audit_retention_days == 0
    events = {
        await add_audit_event(resources, created_at=NOW - timedelta(days=365 * 30)),
        await add_audit_event(resources, created_at=NOW - TICK),
    }

    deleted = await run_retention(resources.sessionmaker, resources.settings, now=NOW)

    assert deleted == NOTHING
    assert await ids_of(resources, AuditEvent) == events


async def test_audit_events_go_after_audit_retention_days(resources: Resources) -> None:
    settings = retention_settings(resources, audit_retention_days=365)
    cutoff = NOW - timedelta(days=365)
    gone = {
        await add_audit_event(resources, created_at=cutoff - timedelta(days=900)),
        await add_audit_event(resources, created_at=cutoff - TICK),
    }
    kept = {
        await add_audit_event(resources, created_at=cutoff),
        await add_audit_event(resources, created_at=NOW - TICK),
    }

    deleted = await run_retention(resources.sessionmaker, settings, now=NOW)

    assert deleted == {**NOTHING, "audit_events": len(gone)}
    assert await ids_of(resources, AuditEvent) == kept


async def test_rows_deleted_are_counted_by_kind(
    resources: Resources, make_account: AccountFactory
) -> None:
    account = await make_account()
    old = NOW - timedelta(days=400)
    await add_idempotency_record(resources, account.id, created_at=old)
    await add_idempotency_record(resources, account.id, created_at=old)
    await add_reset_token(resources, account.id, expires_at=old, used_at=None)

    def counted(kind: str) -> float:
        return REGISTRY.get_sample_value("retention_deleted_rows_total", {"kind": kind}) or 0.0

    before = {kind: counted(kind) for kind, _ in PURGES}
    await run_retention(resources.sessionmaker, resources.settings, now=NOW)

    assert {kind: counted(kind) - before[kind] for kind, _ in PURGES} == {
        **NOTHING,
        "idempotency_records": 2,
        "password_reset_tokens": 1,
    }
    # Every kind has its series, even at zero, so a rate over it is defined.
    assert all(
        REGISTRY.get_sample_value("retention_deleted_rows_total", {"kind": kind}) is not None
        for kind, _ in PURGES
    )
