"""The migrations build the schema the models describe, and can be undone."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.models import Base, Role
from tests.conftest import alembic_config


def _drift(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_models_and_migrations_agree(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as connection:
        drift = await connection.run_sync(_drift)

    assert drift == []


async def test_downgrade_to_base_and_upgrade_again(
    admin_engine: AsyncEngine, settings: Settings
) -> None:
    config = alembic_config(settings.database_url)

    await asyncio.to_thread(command.downgrade, config, "base")
    async with admin_engine.connect() as connection:
        assert await connection.run_sync(_tables) == set()

    await asyncio.to_thread(command.upgrade, config, "head")
    async with admin_engine.connect() as connection:
        assert await connection.run_sync(_tables) == set(Base.metadata.tables)
        roles = set((await connection.scalars(select(Role.name))).all())
    assert roles == {"admin", "member"}
