"""A backlog goes in batches of RETENTION_BATCH_SIZE rows, each committed on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.models import AuditEvent
from app.core.resources import Resources
from app.identity.models import LoginSession
from app.retention.purges import purge_audit_events, purge_login_sessions, purge_refresh_tokens
from tests.conftest import AccountFactory
from tests.retention.rows import (
    NOW,
    add_audit_event,
    add_login_session,
    ids_of,
    refresh_token_sessions,
    retention_settings,
)

T = TypeVar("T")
# A batch that never commits would be deleted again and again: fail, do not hang.
BOUND_SECONDS = 30


async def bounded(work: Awaitable[T]) -> T:
    return await asyncio.wait_for(work, BOUND_SECONDS)


@dataclass
class Transactions:
    """What reached the database: rows each DELETE removed, and commits, in order."""

    log: list[str] = field(default_factory=list)

    def deletes(self) -> list[int]:
        return [int(entry.split()[1]) for entry in self.log if entry.startswith("delete")]


@contextmanager
def watching(engine: AsyncEngine) -> Iterator[Transactions]:
    seen = Transactions()

    def on_execute(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            seen.log.append(f"delete {cursor.rowcount}")

    def on_commit(_conn: Any) -> None:
        seen.log.append("commit")

    event.listen(engine.sync_engine, "after_cursor_execute", on_execute)
    event.listen(engine.sync_engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", on_execute)
        event.remove(engine.sync_engine, "commit", on_commit)


async def test_a_backlog_goes_in_batches_each_its_own_transaction(resources: Resources) -> None:
    settings = retention_settings(resources, audit_retention_days=30, retention_batch_size=2)
    for days in range(31, 36):
        await add_audit_event(resources, created_at=NOW - timedelta(days=days))
    recent = await add_audit_event(resources, created_at=NOW - timedelta(days=1))

    with watching(resources.engine) as seen:
        deleted = await bounded(purge_audit_events(resources.sessionmaker, settings, now=NOW))

    assert deleted == 5
    assert seen.log == ["delete 2", "commit", "delete 2", "commit", "delete 1", "commit"]
    assert await ids_of(resources, AuditEvent) == {recent}


async def test_a_long_logins_refresh_tokens_go_in_batches_before_the_login(
    resources: Resources, make_account: AccountFactory
) -> None:
    account = await make_account()
    settings = retention_settings(resources, retention_batch_size=2)
    ended = await add_login_session(
        resources, account.id, expires_at=NOW - timedelta(days=30), refresh_tokens=5
    )

    with watching(resources.engine) as seen:
        tokens = await bounded(purge_refresh_tokens(resources.sessionmaker, settings, now=NOW))
        sessions = await bounded(purge_login_sessions(resources.sessionmaker, settings, now=NOW))

    assert (tokens, sessions) == (5, 1)
    assert seen.deletes() == [2, 2, 1, 1]
    assert seen.log.count("commit") == 4
    assert ended not in await ids_of(resources, LoginSession)
    assert ended not in await refresh_token_sessions(resources)
