"""Under contention the pool serves requests in the order they asked, and loses no connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool
from sqlalchemy.util.concurrency import greenlet_spawn

from app.core.config import Settings
from app.db.engine import create_engine


def pool_of_one(settings: Settings, timeout_seconds: float) -> AsyncEngine:
    """An engine whose pool holds one connection and opens no other."""
    return create_engine(
        settings.model_copy(
            update={
                "db_pool_size": 1,
                "db_max_overflow": 0,
                "db_pool_timeout_seconds": timeout_seconds,
            }
        )
    )


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = pool_of_one(settings, timeout_seconds=2.0)
    yield engine
    await engine.dispose()


async def checkout(pool: Pool) -> PoolProxiedConnection:
    return await greenlet_spawn(pool.connect)


async def give_back(connection: PoolProxiedConnection) -> None:
    await greenlet_spawn(connection.close)


async def test_a_connection_put_back_goes_to_the_request_waiting_not_to_a_newcomer(
    one_connection: AsyncEngine,
) -> None:
    pool = one_connection.sync_engine.pool
    served: list[str] = []

    async def request(name: str) -> None:
        connection = await checkout(pool)
        served.append(name)
        await give_back(connection)

    held = await checkout(pool)
    waiting = asyncio.create_task(request("waiting"))
    await asyncio.sleep(0.05)  # it waits for the pool now
    await give_back(held)
    # The waiter has been woken but has not run yet; the newcomer asks at once,
    # as a request already running does. A pool that leaves the connection on
    # the shelf until the waiter runs lets the newcomer take it.
    await request("newcomer")
    await waiting
    assert served == ["waiting", "newcomer"]


async def test_a_wait_that_timed_out_takes_no_connection_from_the_next_request(
    settings: Settings,
) -> None:
    engine = pool_of_one(settings, timeout_seconds=0.05)
    pool = engine.sync_engine.pool
    try:
        held = await checkout(pool)
        with pytest.raises(exc.TimeoutError):
            await checkout(pool)
        await give_back(held)
        # Had the expired wait stayed in line, the connection would go to it, and this
        # request would wait out the timeout in turn.
        again = await checkout(pool)
        await give_back(again)
    finally:
        await engine.dispose()


async def test_a_request_cancelled_as_its_connection_arrives_passes_it_on(
    one_connection: AsyncEngine,
) -> None:
    pool = one_connection.sync_engine.pool
    assert isinstance(pool, QueuePool)
    held = await checkout(pool)
    cancelled = asyncio.create_task(checkout(pool))
    await asyncio.sleep(0.05)
    await give_back(held)
    # Handed over, but the request is cancelled (its deadline, a client gone)
    # before it runs again: the connection must go back, not vanish with it.
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert pool.checkedout() == 0
    again = await asyncio.wait_for(checkout(pool), timeout=1)
    await give_back(again)
