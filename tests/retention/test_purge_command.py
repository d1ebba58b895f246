"""`python -m app purge`: one retention run now, in a process of its own, as an operator runs it."""

from __future__ import annotations

import json
from datetime import timedelta

from app.audit.models import AuditEvent
from app.core.resources import Resources
from app.db.types import utcnow
from app.idempotency.models import IdempotencyRecord
from tests.conftest import AccountFactory
from tests.helpers import app_environment
from tests.retention.rows import add_audit_event, add_idempotency_record, ids_of
from tests.test_cli import run_cli


async def test_purge_deletes_what_is_past_its_time_and_prints_the_counts(
    resources: Resources, make_account: AccountFactory
) -> None:
    account = await make_account()
    settings = resources.settings
    ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
    await add_idempotency_record(resources, account.id, created_at=utcnow() - ttl * 2)
    fresh = await add_idempotency_record(resources, account.id, created_at=utcnow())
    ancient_event = await add_audit_event(resources, created_at=utcnow() - timedelta(days=3650))

    result = run_cli(
        "purge",
        env=app_environment(settings, LOG_FORMAT="json"),
    )

    assert result.returncode == 0, result.stderr
    counts = dict(line.split(maxsplit=1) for line in result.stdout.splitlines()[:-1])
    assert counts == {
        "refresh_tokens": "0 deleted",
        "login_sessions": "0 deleted",
        "password_reset_tokens": "0 deleted",
        "idempotency_records": "1 deleted",
        "audit_events": "0 deleted",
        "outbox_messages": "0 deleted",
    }
    assert "kept forever" in result.stdout.splitlines()[-1]
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (run,) = [line for line in logged if line["event"] == "retention.purged"]
    assert run["deleted"]["idempotency_records"] == 1
    assert await ids_of(resources, IdempotencyRecord) == {fresh}
    assert await ids_of(resources, AuditEvent) == {ancient_event}


def test_purge_on_a_database_without_tables_says_to_migrate_first(tmp_path: object) -> None:
    result = run_cli(
        "purge", env={"APP_ENV": "test", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    )

    assert result.returncode == 2
    assert "make migrate" in result.stderr
