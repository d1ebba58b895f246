"""The rate limiter: named limits counted in shared storage, with a policy for when it fails.

Built on the async API of `limits`. Each call is bounded by
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
from dataclasses import dataclass

from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import STRATEGIES
from limits.aio.strategies import RateLimiter as Strategy
from redis.asyncio import Redis

from app.core.errors import ServiceUnavailable
from app.core.ratelimit.guard import PAUSE_SECONDS, StorageGuard
from app.core.ratelimit.lockout import LoginLockout
from app.core.ratelimit.metrics import LOCAL_FALLBACKS
from app.core.ratelimit.redis_window import RedisSlidingWindow
from app.core.ratelimit.rules import LimitName, Rule
from app.core.ratelimit.storage import KEY_PREFIX, close_storage, create_storage, redis_client_of


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
    ) -> None:
        """Counters in `redis` when given, else in this process."""
        self._storage = storage = create_storage(redis)
        self._rules = dict(rules)
        self._strategies = _strategies_over(storage, self._rules.values())
        # Where the limits that are never skipped count while the storage is
        # out; with no Redis the storage is this process already.
        self._local: dict[str, Strategy] = {}
        self._local_storage: MemoryStorage | None = None
        if redis is not None:
            self._local_storage = MemoryStorage()
            self._local = _strategies_over(
                self._local_storage, (rule for rule in self._rules.values() if rule.never_skipped)
            )
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
        self._guard = StorageGuard(timeout_seconds=timeout_seconds)
        self._fail_open = fail_open
        self.lockout = LoginLockout(
            redis,
            self._guard,
            account=self._rules[LimitName.LOGIN_LOCKOUT_ACCOUNT].item,
            client=self._rules[LimitName.LOGIN_LOCKOUT_CLIENT].item,
        )

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

        decision = await self._guard.call(rule.name, count)
        local = self._local.get(rule.strategy) if rule.never_skipped else None
        if local is None:
            return decision if decision is not None else self._unchecked(rule)
        if decision is None:
            LOCAL_FALLBACKS.labels(limit=rule.name).inc()
            allowed = await local.hit(rule.item, name, *key)
            return _decision(rule, allowed, await local.get_window_stats(rule.item, name, *key))
        if decision.allowed and not await local.hit(rule.item, name, *key):
            # This process counted requests the storage missed while it was out.
            return _decision(rule, False, await local.get_window_stats(rule.item, name, *key))
        return decision

    async def test(self, name: LimitName, *key: str) -> Decision:
        """Whether one more request would fit, without counting it."""
        rule = self._rules[name]
        strategy = self._strategies[rule.strategy]

        async def peek() -> Decision:
            stats = await strategy.get_window_stats(rule.item, name, *key)
            return _decision(rule, stats.remaining > 0, stats)

        decision = await self._guard.call(rule.name, peek)
        local = self._local.get(rule.strategy) if rule.never_skipped else None
        if decision is not None:
            return decision
        if local is None:
            return self._unchecked(rule)
        LOCAL_FALLBACKS.labels(limit=rule.name).inc()
        stats = await local.get_window_stats(rule.item, name, *key)
        return _decision(rule, stats.remaining > 0, stats)

    async def clear(self, name: LimitName, *key: str) -> None:
        """Forget every request counted for `key`. Best effort: a storage failure is only logged."""
        rule = self._rules[name]
        strategy = self._strategies[rule.strategy]
        local = self._local.get(rule.strategy) if rule.never_skipped else None
        if local is not None:
            await local.clear(rule.item, name, *key)
        await self._guard.call(rule.name, lambda: strategy.clear(rule.item, name, *key))

    async def aclose(self) -> None:
        await close_storage(self._storage)
        if self._local_storage is not None:
            await close_storage(self._local_storage)

    def _unchecked(self, rule: Rule) -> Decision:
        """The default limit's answer when the storage failed: RATE_LIMIT_FAIL_OPEN decides."""
        if not self._fail_open:
            raise ServiceUnavailable(
                "Request limits cannot be checked right now; retry shortly.",
                headers={"Retry-After": str(math.ceil(PAUSE_SECONDS))},
            )
        # Nothing was counted, so nothing is used up.
        return Decision(True, rule.item.amount, rule.item.amount, 0)


def _strategies_over(storage: Storage, rules: Iterable[Rule]) -> dict[str, Strategy]:
    strategies: dict[str, Strategy] = {}
    for rule in rules:
        build: Callable[[Storage], Strategy] = STRATEGIES[rule.strategy]
        strategies[rule.strategy] = build(storage)
    return strategies


def _decision(rule: Rule, allowed: bool, stats: tuple[float, int]) -> Decision:
    reset_at, remaining = stats
    reset_after = max(0, math.ceil(reset_at - time.time()))
    if not allowed:
        # Refused means at least a second to wait, whatever the rounding says.
        reset_after = max(1, reset_after)
    return Decision(allowed, rule.item.amount, max(0, remaining), reset_after)
