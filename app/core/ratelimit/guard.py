"""How long a call to the shared storage may take, and when to stop asking it for a while.

The limiter and the login lockout share one guard, as they share one Redis:
what one learns about an outage spares the other its timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from app.core.clock import Clock
from app.core.deadlines import Deadlines
from app.core.ratelimit.metrics import STORAGE_FAILURES

log = structlog.get_logger(__name__)
T = TypeVar("T")

# After this many failures in a row the storage is left alone for a pause, so
# an outage costs each request nothing instead of a timeout. After the pause
# one call tries the storage again while the others carry on without it, so
# a storage that hangs costs one request a timeout per pause, not every
# request that arrives while the retry waits.
FAILURES_BEFORE_PAUSE = 3
PAUSE_SECONDS = 1.0


class StorageGuard:
    def __init__(self, *, timeout_seconds: float, clock: Clock | None = None) -> None:
        # Every call gets the same time: one timer serves all of them.
        self._deadlines = Deadlines(timeout_seconds)
        self._clock = clock or Clock()
        self._failures = 0
        self._paused_until = 0.0
        self._probing = False

    async def call(self, limit: str, operation: Callable[[], Awaitable[T]]) -> T | None:
        """The operation's answer, or None when it failed, timed out or was not tried."""
        down = self._failures >= FAILURES_BEFORE_PAUSE
        if down and (self._probing or self._clock.monotonic() < self._paused_until):
            STORAGE_FAILURES.labels(limit=limit).inc()
            return None
        self._probing = down
        deadline = self._deadlines.start()
        try:
            result = await operation()
        except asyncio.CancelledError:
            if not self._deadlines.caused(deadline):
                raise
            self._record_failure(limit, TimeoutError())
            return None
        except Exception as exc:  # any storage failure
            self._record_failure(limit, exc)
            return None
        finally:
            self._deadlines.finish(deadline)
            if down:
                self._probing = False
        if self._failures:
            log.info("ratelimit.storage_recovered", after_failures=self._failures)
            self._failures = 0
        return result

    def _record_failure(self, limit: str, exc: Exception) -> None:
        STORAGE_FAILURES.labels(limit=limit).inc()
        self._failures += 1
        if self._failures == 1:
            log.warning("ratelimit.storage_unavailable", error=type(exc).__name__, limit=limit)
        if self._failures >= FAILURES_BEFORE_PAUSE:
            self._paused_until = self._clock.monotonic() + PAUSE_SECONDS
