"""Dead jobs are visible to an operator, and sent back to be tried again, by CLI commands."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.core.context import SYSTEM_CONTEXT
from app.core.resources import Resources
from app.db.types import utcnow
from app.outbox.models import OutboxMessage
from app.outbox.repository import OutboxRepository
from app.outbox.writer import Outbox
from tests.test_cli import cli_env, run_cli

__all__ = ["cli_env"]


async def dead_jobs(resources: Resources, count: int) -> list[uuid.UUID]:
    async with resources.sessionmaker() as session:
        outbox = Outbox(session, SYSTEM_CONTEXT)
        ids = [outbox.add("test.doomed", {"n": n}).id for n in range(count)]
        await session.flush()
        repository = OutboxRepository(session)
        for job_id in ids:
            await repository.fail(job_id, utcnow(), "SMTPDataError", retry_at=None)
        await session.commit()
    return ids


async def statuses(resources: Resources) -> dict[uuid.UUID, tuple[str, int]]:
    async with resources.sessionmaker() as session:
        rows = await session.scalars(select(OutboxMessage))
        return {row.id: (row.status, row.attempts) for row in rows}


async def test_jobs_dead_lists_each_dead_job_with_its_last_error(
    cli_env: dict[str, str], resources: Resources
) -> None:
    ids = await dead_jobs(resources, 2)

    listed = run_cli("jobs-dead", env=cli_env)

    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(str(i) for i in ids)
    assert all("test.doomed" in line and "error=SMTPDataError" in line for line in lines)


async def test_jobs_retry_sends_the_named_dead_job_back_with_fresh_attempts(
    cli_env: dict[str, str], resources: Resources
) -> None:
    chosen, other = await dead_jobs(resources, 2)

    retried = run_cli("jobs-retry", str(chosen), env=cli_env)

    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == "1 dead job(s) pending again"
    assert await statuses(resources) == {chosen: ("pending", 0), other: ("dead", 1)}
    assert (
        run_cli("jobs-retry", "--all", env=cli_env).stdout.strip() == "1 dead job(s) pending again"
    )
    assert run_cli("jobs-dead", env=cli_env).stdout.strip() == "no dead jobs"


def test_jobs_retry_without_ids_or_all_fails_clearly(cli_env: dict[str, str]) -> None:
    answer = run_cli("jobs-retry", env=cli_env)

    assert answer.returncode == 2
    assert "--all" in answer.stderr
