"""Connection-pool gauges, kept current by the pool's own checkout and checkin events.

Counted up and down rather than read from the pool: the pool's counters lag
its events (a checkin fires before the connection is back), and the gauges
must add up across engines and worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.metrics import DB_POOL_CAPACITY, DB_POOL_CHECKED_OUT, DB_POOL_OVERFLOW


@contextmanager
def pool_metrics(engine: AsyncEngine, *, pool_size: int, max_overflow: int) -> Iterator[None]:
    sync_engine = engine.sync_engine
    checked_out = 0

    def on_checkout(*_args: Any) -> None:
        nonlocal checked_out
        checked_out += 1
        DB_POOL_CHECKED_OUT.inc()
        if checked_out > pool_size:
            DB_POOL_OVERFLOW.inc()

    def on_checkin(*_args: Any) -> None:
        nonlocal checked_out
        if checked_out == 0:
            return  # lent before these listeners were attached
        if checked_out > pool_size:
            DB_POOL_OVERFLOW.dec()
        checked_out -= 1
        DB_POOL_CHECKED_OUT.dec()

    DB_POOL_CAPACITY.inc(pool_size + max_overflow)
    event.listen(sync_engine, "checkout", on_checkout)
    event.listen(sync_engine, "checkin", on_checkin)
    try:
        yield
    finally:
        event.remove(sync_engine, "checkout", on_checkout)
        event.remove(sync_engine, "checkin", on_checkin)
        # Whatever is still lent no longer counts once this engine is gone.
        DB_POOL_CHECKED_OUT.dec(checked_out)
        DB_POOL_OVERFLOW.dec(max(checked_out - pool_size, 0))
        DB_POOL_CAPACITY.dec(pool_size + max_overflow)
