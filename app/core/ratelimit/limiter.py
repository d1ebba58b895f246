"""The rate limiter: named limits counted in shared storage, with a policy for when it fails.

In Redis, every limit is counted by the scripts of redis_window.py, on the
app's own client, over keys of their own; in process memory, by the async
API of `limits` (which also parses the settings' "10/minute"). Each call is bounded by
RATE_LIMIT_STORAGE_TIMEOUT_SECONDS; a storage that errs or is slow never
turns a request into a 500. The default limit then follows
RATE_LIMIT_FAIL_OPEN (let the request through uncounted, or refuse it with
503); every other limit guards sign-in, registration or a reset and is never
skipped: it is counted in this process instead, for that request. Those
limits are counted here as well while the storage answers, and a request
this process alone has seen too many of is refused, so a storage that comes
and goes cannot hand out a fresh budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from limits.aio.storage import MemoryStorage
from limits.aio.strategies import STRATEGIES
from limits.aio.strategies import RateLimiter as Strategy
from limits.util import WindowStats
from opentelemetry.trace import Tracer
from redis.asyncio import Redis

from app.core.clock import Clock
from app.core.errors import ServiceUnavailable
from app.core.ratelimit.guard import PAUSE_SECONDS, StorageGuard
from app.core.ratelimit.lockout import LoginLockout
from app.core.ratelimit.metrics import LOCAL_FALLBACKS
from app.core.ratelimit.redis_window import KEY_PREFIX, RedisWindows
from app.core.ratelimit.rules import LimitName, Rule


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the next request would be let through again (a slot frees up).
    reset_after_seconds: int


class RateLimiter:
    """The named limits of rules.py over one storage, keyed by whatever strings a caller passes.

    Routes count requests through app/web/ratelimit.py. The login lockout
    keeps counters of its own (`lockout`), as a success must take back
    exactly the attempt it counted.
    """

    def __init__(
        self,
        redis: Redis | None,
        rules: Mapping[LimitName, Rule],
        *,
        timeout_seconds: float,
        fail_open: bool,
        clock: Clock | None = None,
    ) -> None:
        """Counters in `redis` when given, else in this process."""
        clock = clock or Clock()
        self._rules = dict(rules)
        self._redis = redis
        self._shared = RedisWindows(redis, KEY_PREFIX) if redis is not None else None
        self._counters = (
            {name: self._shared.counter(rule.strategy, rule.item) for name, rule in rules.items()}
            if self._shared is not None
            else {}
        )
        # With no Redis, where every limit counts. With Redis, where the limits
        # that are never skipped count as well, and alone while Redis is out.
        self._memory = MemoryStorage()
        self._in_process = _strategies_over(self._memory, self._rules.values())
        self._guard = StorageGuard(timeout_seconds=timeout_seconds, clock=clock)
        self._fail_open = fail_open
        self.lockout = LoginLockout(
            redis,
            self._guard,
            account=self._rules[LimitName.LOGIN_LOCKOUT_ACCOUNT].item,
            client=self._rules[LimitName.LOGIN_LOCKOUT_CLIENT].item,
            clock=clock,
        )

    @property
    def redis_client(self) -> Redis | None:
        """The Redis client counting the limits: the app's own, when it has one."""
        return self._redis

    def rule(self, name: LimitName) -> Rule:
        return self._rules[name]

    async def hit(self, name: LimitName, *key: str) -> Decision:
        """Count one request against the limit for `key`; `allowed` says whether it fits."""
        rule = self._rules[name]
        in_process = self._in_process[rule.strategy]
        shared = self._shared
        if shared is None:
            return await _counted(in_process, rule, key)

        counter = self._counters[name]

        async def count() -> Decision:
            return _decision(rule, *await counter.hit((name, *key), 1))

        decision = await self._guard.call(rule.name, count)
        if not rule.never_skipped:
            return decision if decision is not None else self._unchecked(rule)
        if decision is None:
            LOCAL_FALLBACKS.labels(limit=rule.name).inc()
            return await _counted(in_process, rule, key)
        if decision.allowed and not await in_process.hit(rule.item, name, *key):
            # This process counted requests the storage missed while it was out.
            stats = await in_process.get_window_stats(rule.item, name, *key)
            return _decision(rule, False, stats)
        return decision

    async def test(self, name: LimitName, *key: str) -> Decision:
        """Whether one more request would fit, without counting it."""
        rule = self._rules[name]
        in_process = self._in_process[rule.strategy]
        shared = self._shared
        if shared is not None:

            async def peek() -> Decision:
                return _decision(rule, *await shared.test(rule.strategy, rule.item, name, *key))

            decision = await self._guard.call(rule.name, peek)
            if decision is not None:
                return decision
            if not rule.never_skipped:
                return self._unchecked(rule)
            LOCAL_FALLBACKS.labels(limit=rule.name).inc()
        stats = await in_process.get_window_stats(rule.item, name, *key)
        return _decision(rule, stats.remaining > 0, stats)

    async def clear(self, name: LimitName, *key: str) -> None:
        """Forget every request counted for `key`. Best effort: a storage failure is only logged."""
        rule = self._rules[name]
        await self._in_process[rule.strategy].clear(rule.item, name, *key)
        shared = self._shared
        if shared is not None:
            await self._guard.call(
                rule.name, lambda: shared.clear(rule.strategy, rule.item, name, *key)
            )

    def traced(self, tracer: Tracer | None) -> AbstractContextManager[None]:
        """A span for each limit counted in Redis by a sampled request, while the block runs.

        The login lockout's commands go through the client and get theirs from its instrumentation.
        """
        if self._shared is None:
            return nullcontext()
        return self._shared.traced(tracer)

    async def aclose(self) -> None:
        # The in-process store sweeps expired counters in a task of its own.
        timer = getattr(self._memory, "timer", None)
        if timer is not None and not timer.done():
            timer.cancel()
        if self._shared is not None:
            await self._shared.aclose()

    def _unchecked(self, rule: Rule) -> Decision:
        """The default limit's answer when the storage failed: RATE_LIMIT_FAIL_OPEN decides."""
        if not self._fail_open:
            raise ServiceUnavailable(
                "Request limits cannot be checked right now; retry shortly.",
                headers={"Retry-After": str(math.ceil(PAUSE_SECONDS))},
            )
        # Nothing was counted, so nothing is used up.
        return Decision(True, rule.item.amount, rule.item.amount, 0)


def _strategies_over(storage: MemoryStorage, rules: Iterable[Rule]) -> dict[str, Strategy]:
    strategies: dict[str, Strategy] = {}
    for rule in rules:
        build: Callable[[MemoryStorage], Strategy] = STRATEGIES[rule.strategy]
        strategies[rule.strategy] = build(storage)
    return strategies


async def _counted(strategy: Strategy, rule: Rule, key: tuple[str, ...]) -> Decision:
    """Count one request in this process and read the window it counted in."""
    allowed = await strategy.hit(rule.item, rule.name, *key)
    return _decision(rule, allowed, await strategy.get_window_stats(rule.item, rule.name, *key))


def _decision(rule: Rule, allowed: bool, stats: WindowStats) -> Decision:
    reset_at, remaining = stats
    reset_after = max(0, math.ceil(reset_at - time.time()))
    if not allowed:
        # Refused means at least a second to wait, whatever the rounding says.
        reset_after = max(1, reset_after)
    return Decision(allowed, rule.item.amount, max(0, remaining), reset_after)
