"""Two `migrate` runs at once on an empty PostgreSQL database both succeed.

A release may start its migration Job while a retried one is still running,
or an operator may run `make migrate` by hand meanwhile: the runs take turns
on an advisory lock, and the second finds nothing left to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from app.models import Base
from tests.conftest import alembic_config
from tests.deploy.databases import fresh_database, postgres_only

RUNS = 2
MIGRATE_TIMEOUT_SECONDS = 180


def _start_migrate(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "LOG_FORMAT": "json",
    }
    with log.open("wb") as output:
        # Outside the checkout, so no `.env` is read.
        return subprocess.Popen(
            [sys.executable, "-m", "app", "migrate"],
            cwd=log.parent,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def _schema(database_url: str) -> tuple[set[str], list[str]]:
    url = make_url(database_url)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        versions = await connection.fetch("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
    return {row["tablename"] for row in tables}, [row["version_num"] for row in versions]


async def test_concurrent_migrate_runs_both_succeed(database_url: str, tmp_path: Path) -> None:
    postgres_only(database_url)
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()

    async with fresh_database(database_url, "migrate") as empty:
        logs = [tmp_path / f"migrate-{run}.log" for run in range(RUNS)]
        runs = [_start_migrate(empty, log) for log in logs]
        try:
            codes = [run.wait(timeout=MIGRATE_TIMEOUT_SECONDS) for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
        outputs = "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)
        assert codes == [0] * RUNS, outputs

        tables, versions = await _schema(empty)

    assert versions == [head]
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
