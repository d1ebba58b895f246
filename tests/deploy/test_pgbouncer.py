"""The app through PgBouncer in transaction pooling, with DB_PGBOUNCER=true.

Two server connections for many concurrent app transactions: consecutive
transactions of one app connection land on different server connections,
and one server connection serves many app connections. Named or cached
prepared statements break there; unnamed ones prepared inside their own
transaction do not. Migrations run against PostgreSQL itself.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from app.core.config import Settings
from app.core.outages import DatabaseUnreachable
from app.db.engine import create_engine
from app.main import create_app
from tests.conftest import PASSWORD, alembic_config, client_for, make_settings
from tests.deploy.databases import fresh_database, postgres_only
from tests.deploy.processes import pgbouncer

pytestmark = pytest.mark.lb

CLIENTS = 8


@pytest.fixture
async def through_pgbouncer(database_url: str) -> AsyncIterator[str]:
    """A migrated database of the test's own, and PgBouncer's URL for it."""
    postgres_only(database_url)
    async with fresh_database(database_url, "bouncer") as direct:
        await asyncio.to_thread(command.upgrade, alembic_config(direct), "head")
        # Not pytest's own temp dir: it is private to root, PgBouncer runs as postgres.
        with (
            tempfile.TemporaryDirectory(prefix="groundwork-pgbouncer-") as directory,
            pgbouncer(direct, Path(directory)) as url,
        ):
            yield url


def bouncer_settings(url: str, **overrides: object) -> Settings:
    return make_settings(url, db_pgbouncer=True, rate_limit_enabled=False, **overrides)


async def _a_users_round(http: httpx.AsyncClient) -> None:
    email = f"bounced-{uuid.uuid4().hex[:10]}@example.com"
    registered = await http.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    token = await http.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    for title in ("first", "second"):
        created = await http.post("/api/v1/items", json={"title": title}, headers=headers)
        assert created.status_code == 201, created.text
    listed = await http.get("/api/v1/items", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [item["title"] for item in listed.json()["items"]] == ["second", "first"]


async def test_register_login_create_and_list_work_through_pgbouncer(
    through_pgbouncer: str,
) -> None:
    application = create_app(bouncer_settings(through_pgbouncer))

    async with LifespanManager(application), client_for(application) as http:
        await asyncio.gather(*(_a_users_round(http) for _ in range(CLIENTS)))
        ready = await http.get("/health/ready")

    assert ready.status_code == 200, ready.text


async def test_the_statement_timeout_holds_through_pgbouncer(through_pgbouncer: str) -> None:
    engine = create_engine(bouncer_settings(through_pgbouncer, db_statement_timeout_seconds=1.5))
    try:
        async with engine.connect() as connection:
            timeout = await connection.scalar(text("SHOW statement_timeout"))
    finally:
        await engine.dispose()

    assert timeout == "1500ms"


async def test_pgbouncer_refuses_the_timeout_sent_at_connect(through_pgbouncer: str) -> None:
    """Why the setting exists: without it the app cannot even connect."""
    engine = create_engine(make_settings(through_pgbouncer, db_pgbouncer=False))
    try:
        with pytest.raises(DatabaseUnreachable) as refused:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    assert "statement_timeout" in str(refused.value.__cause__)
