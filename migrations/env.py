"""Alembic environment: the app's settings and metadata, an async engine."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.core.config import Settings
from app.db.engine import create_engine
from app.db.types import UTCDateTime
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# One key for every `migrate` of this schema: a second run waits for the first,
# then finds the schema at head and has nothing to do. Any fixed 64-bit number
# works; this one is "groundwork" read as hex digits where it can be.
MIGRATION_LOCK_KEY = 0x6702_0D40_0C4D_0001


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().database_url


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    # Migrations stay free of app imports: UTCDateTime is a timestamptz column.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )


def _run_sync(connection: Connection) -> None:
    # PostgreSQL runs DDL in transactions, but two runs that both find an
    # empty schema still race to create the same tables and one fails on a
    # duplicate key. A session-level advisory lock, taken and committed
    # before Alembic looks at the version table, makes them take turns.
    # SQLite has one writer at a time anyway.
    locked = connection.dialect.name == "postgresql"
    if locked:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
    try:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if locked:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()


async def _run_online() -> None:
    # A migration may rewrite a large table or build an index for minutes;
    # the statement timeout bounds requests, not releases.
    settings = Settings().model_copy(update={"db_statement_timeout_seconds": 0})
    engine = create_engine(settings, url=_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    asyncio.run(_run_online())
