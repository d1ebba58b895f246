"""Databases of a test's own on the PostgreSQL server that TEST_DATABASE_URL names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url


def postgres_only(database_url: str) -> None:
    """Skip on SQLite: what is tested is PostgreSQL's own behaviour."""
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL)")


@asynccontextmanager
async def fresh_database(database_url: str, purpose: str) -> AsyncIterator[str]:
    """An empty database next to the test database, named after it; dropped afterwards."""
    url = make_url(database_url)
    name = f"{url.database}_{purpose}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database="postgres",
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
