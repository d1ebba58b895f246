"""Every timestamp read from the database is an aware UTC datetime, on every backend.

Code compares and serialises them without asking where they came from: a
naive value, or one in the connection's time zone, would shift or break
those comparisons silently.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.types import UTCDateTime

EASTERN = timezone(timedelta(hours=-5))


async def test_a_timestamp_reads_back_as_the_same_instant_in_utc(
    admin_engine: AsyncEngine,
) -> None:
    written = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=EASTERN)
    async with admin_engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # The server would hand a driver that follows it local times.
            await connection.execute(text("SET TIME ZONE 'America/New_York'"))
        statement = select(bindparam("written", written, type_=UTCDateTime()).label("read"))
        read = (await connection.execute(statement)).one().read
        await connection.rollback()
    assert isinstance(read, datetime)
    assert read == written
    assert read.tzinfo is UTC
