"""The connection pool, first come first served.

SQLAlchemy's asyncio pool queues connections in an `asyncio.Queue`. A
connection put back wakes the longest waiter, but stays in the queue until
that waiter runs; a request arriving in between finds it there and takes
it, and the waiter, finding nothing, queues again at the back. Under load
(more requests in flight than connections) a few requests lose that race
over and over: most wait a few milliseconds for a connection, some many
times as long, and one that keeps losing waits out DB_POOL_TIMEOUT_SECONDS
and gets a 503. (The threaded pool has the same race:
sqlalchemy/sqlalchemy#7679.)

Here a connection put back goes straight to the longest waiter, and a
request finds a connection waiting for it only when nobody is waiting
before it. Everything else (sizes, overflow, timeout, recycling,
invalidation) is SQLAlchemy's own pool.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty

T = TypeVar("T")


class FairAsyncQueue(AsyncAdaptedQueue[T]):
    """An asyncio queue that hands each item to the longest waiter.

    Called from SQLAlchemy's synchronous pool code, which runs in a greenlet
    of the event loop: a wait is awaited through `await_`.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[T]] = deque()

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            # A waiter whose wait ended (timed out, cancelled) takes nothing.
            if not waiter.done():
                waiter.set_result(item)
                return
        super().put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        if not self._someone_waiting():
            try:
                return self.get_nowait()
            except Empty:
                if not block:
                    raise
        elif not block:
            raise Empty()
        try:
            return await_(self._wait_within(timeout))
        except TimeoutError as exc:
            raise Empty() from exc

    def _someone_waiting(self) -> bool:
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
        return bool(self._waiters)

    async def _wait_within(self, seconds: float | None) -> T:
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as the wait ended: pass it on, never lose it.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            raise


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio pool on a first-come, first-served queue."""

    _queue_class = FairAsyncQueue[ConnectionPoolEntry]
