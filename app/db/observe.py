"""Everything that watches one engine, attached for the life of the app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.tracing import Tracing
from app.db.pool_metrics import pool_metrics
from app.db.tracing import traced_sql


@contextmanager
def observed_engine(engine: AsyncEngine, settings: Settings, tracing: Tracing) -> Iterator[None]:
    with ExitStack() as stack:
        stack.enter_context(
            pool_metrics(
                engine, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
            )
        )
        if tracing.enabled:
            stack.enter_context(traced_sql(engine, tracing.tracer("app.db")))
        yield
