"""The rate limiter: named limits counted in shared storage, with a policy for when it fails.

Built on the async API of `limits`. Each call is bounded by
RATE_LIMIT_STORAGE_TIMEOUT_SECONDS; a storage that errs or is slow never
turns a request into a 500: the call is answered by the configured policy
(let it through, or refuse it with 503) and a warning is logged once per outage.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog
from limits.aio.storage import Storage
from limits.aio.strategies import STRATEGIES
from limits.aio.strategies import RateLimiter as Strategy
from redis.asyncio import Redis

from app.core.errors import ServiceUnavailable
from app.core.ratelimit.metrics import STORAGE_FAILURES
from app.core.ratelimit.redis_window import RedisSlidingWindow
from app.core.ratelimit.rules import LimitName, Rule
from app.core.ratelimit.storage import KEY_PREFIX, close_storage, create_storage, redis_client_of

log = structlog.get_logger(__name__)
T = TypeVar("T")

# After this many failures in a row the storage is left alone for a pause, so
# an outage costs each request nothing instead of a timeout.
_FAILURES_BEFORE_PAUSE = 3
_PAUSE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the next request would be let through again (a slot frees up).
    reset_after_seconds: int


class RateLimiter:
    """The named limits of rules.py over one storage, keyed by whatever strings a caller passes.

    Routes count requests through app/api/ratelimit.py; a service can keep its
    own counters, e.g. failed logins per account:
    `hit(LimitName.LOGIN_LOCKOUT_ACCOUNT, email)`, `test(...)` before trying,
    `clear(...)` after a success.
    """

    def __init__(
        self,
        redis: Redis | None,
        rules: Mapping[LimitName, Rule],
        *,
        timeout_seconds: float,
        fail_open: bool,
    ) -> None:
        """Counters in `redis` when given, else in this process."""
        self._storage = storage = create_storage(redis)
        self._rules = dict(rules)
        self._strategies: dict[str, Strategy] = {}
        for rule in self._rules.values():
            build: Callable[[Storage], Strategy] = STRATEGIES[rule.strategy]
            self._strategies[rule.strategy] = build(storage)
        # Counting and reporting in one round trip where it is on offer: the
        # default strategy on Redis. Elsewhere limits takes a trip for each.
        self._one_trip: dict[LimitName, RedisSlidingWindow] = {}
        if redis is not None:
            window = RedisSlidingWindow(redis, KEY_PREFIX)
            self._one_trip = {
                name: window
                for name, rule in self._rules.items()
                if rule.strategy == "sliding-window-counter"
            }
        self._timeout = timeout_seconds
        self._fail_open = fail_open
        self._failures = 0
        self._paused_until = 0.0

    @property
    def redis_client(self) -> Redis | None:
        """The Redis client counting the limits, when the storage is Redis."""
        return redis_client_of(self._storage)

    def rule(self, name: LimitName) -> Rule:
        return self._rules[name]

    async def hit(self, name: LimitName, *key: str) -> Decision:
        """Count one request against the limit for `key`; `allowed` says whether it fits."""
        rule = self._rules[name]
        strategy = self._strategies[rule.strategy]

        one_trip = self._one_trip.get(name)

        async def count() -> Decision:
            if one_trip is not None:
                return _decision(rule, *await one_trip.hit(rule.item, name, *key))
            allowed = await strategy.hit(rule.item, name, *key)
            return _decision(rule, allowed, await strategy.get_window_stats(rule.item, name, *key))

        return await self._guarded(rule, count)

    async def test(self, name: LimitName, *key: str) -> Decision:
        """Whether one more request would fit, without counting it."""
        rule = self._rules[name]
        strategy = self._strategies[rule.strategy]

        async def peek() -> Decision:
            stats = await strategy.get_window_stats(rule.item, name, *key)
            return _decision(rule, stats.remaining > 0, stats)

        return await self._guarded(rule, peek)

    async def clear(self, name: LimitName, *key: str) -> None:
        """Forget every request counted for `key`. Best effort: a storage failure is only logged."""
        rule = self._rules[name]
        strategy = self._strategies[rule.strategy]
        await self._call(rule, lambda: strategy.clear(rule.item, name, *key))

    async def aclose(self) -> None:
        await close_storage(self._storage)

    async def _guarded(self, rule: Rule, operation: Callable[[], Awaitable[Decision]]) -> Decision:
        decision = await self._call(rule, operation)
        if decision is not None:
            return decision
        if not self._fail_open:
            raise ServiceUnavailable(
                "Request limits cannot be checked right now; retry shortly.",
                headers={"Retry-After": str(math.ceil(_PAUSE_SECONDS))},
            )
        # Nothing was counted, so nothing is used up.
        return Decision(True, rule.item.amount, rule.item.amount, 0)

    async def _call(self, rule: Rule, operation: Callable[[], Awaitable[T]]) -> T | None:
        if self._failures >= _FAILURES_BEFORE_PAUSE and time.monotonic() < self._paused_until:
            STORAGE_FAILURES.labels(limit=rule.name).inc()
            return None
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation()
        except Exception as exc:  # any storage failure, a timeout included
            self._record_failure(rule, exc)
            return None
        if self._failures:
            log.info("ratelimit.storage_recovered", after_failures=self._failures)
            self._failures = 0
        return result

    def _record_failure(self, rule: Rule, exc: Exception) -> None:
        STORAGE_FAILURES.labels(limit=rule.name).inc()
        self._failures += 1
        if self._failures == 1:
            log.warning(
                "ratelimit.storage_unavailable",
                error=type(exc).__name__,
                limit=rule.name,
                policy="allow" if self._fail_open else "refuse",
            )
        if self._failures >= _FAILURES_BEFORE_PAUSE:
            self._paused_until = time.monotonic() + _PAUSE_SECONDS


def _decision(rule: Rule, allowed: bool, stats: tuple[float, int]) -> Decision:
    reset_at, remaining = stats
    reset_after = max(0, math.ceil(reset_at - time.time()))
    if not allowed:
        # Refused means at least a second to wait, whatever the rounding says.
        reset_after = max(1, reset_after)
    return Decision(allowed, rule.item.amount, max(0, remaining), reset_after)
