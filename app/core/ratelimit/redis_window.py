"""The sliding-window counter in Redis, counted and reported in one round trip.

limits counts a request (`hit`) and reports what is left (`get_window_stats`)
in two calls, each a round trip to Redis, and every API request needs both:
the X-RateLimit-* headers are on every answer. The second trip alone costs
more than the limiter's budget (docs/benchmarks.md), and no call of limits
does both. This script counts exactly as limits' own sliding-window script
does, over the same keys, and returns the window it has just counted in, so
limits' `test`, `get_window_stats` and `clear` keep working on what it counted
(tests/core/test_ratelimit.py holds the two to the same answers).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.util import WindowStats
from redis.asyncio import Redis

# KEYS: the previous and the current window; ARGV: limit, window in seconds, cost.
# Answers {allowed, previous count, its ttl, current count, its ttl}, ttls in ms.
_COUNT_AND_REPORT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local cost = tonumber(ARGV[3])

-- The current window lives for two windows; once it is past its first, it
-- becomes the previous one and a fresh current window starts at zero.
local current_ttl = redis.call('pttl', KEYS[2])
if current_ttl > 0 and current_ttl < window then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + window)
end

local previous = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = math.max(redis.call('pttl', KEYS[1]), 0)
local current = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = math.max(redis.call('pttl', KEYS[2]), 0)

-- The previous window counts for the share of it still inside the sliding window.
local weighted = math.floor(previous * previous_ttl / window) + current
if cost > limit or weighted + cost > limit then
    return {0, previous, previous_ttl, current, current_ttl}
end
if redis.call('exists', KEYS[2]) == 1 then
    current = redis.call('incrby', KEYS[2], cost)
else
    redis.call('set', KEYS[2], cost, 'PX', window * 2)
    current, current_ttl = cost, window * 2
end
return {1, previous, previous_ttl, current, current_ttl}
"""


class RedisSlidingWindow:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._key_prefix = key_prefix
        # redis-py sends the script's hash and loads the script only when Redis lacks it.
        self._script = redis.register_script(_COUNT_AND_REPORT)

    async def hit(
        self, item: RateLimitItem, *identifiers: str, cost: int = 1
    ) -> tuple[bool, WindowStats]:
        """Count `cost` against the window if it fits; the window's state after the attempt."""
        # limits' key layout: the braces keep both windows on one Redis Cluster slot.
        current_key = f"{self._key_prefix}:{{{item.key_for(*identifiers)}}}"
        answer = await self._script(
            keys=[f"{current_key}/-1", current_key],
            args=[item.amount, item.get_expiry(), cost],
        )
        allowed, previous, previous_ttl_ms, current, current_ttl_ms = (int(v) for v in answer)
        return bool(allowed), _window_stats(
            item, previous, previous_ttl_ms / 1000, current, current_ttl_ms / 1000
        )


def _window_stats(
    item: RateLimitItem, previous: int, previous_ttl: float, current: int, current_ttl: float
) -> WindowStats:
    """What limits' sliding-window counter reports for this window, read as the script left it."""
    window = item.get_expiry()
    remaining = max(0, item.amount - math.floor(previous * previous_ttl / window + current))
    now = time.time()
    if not (previous or current):
        return WindowStats(now, remaining)
    # The next slot frees when the previous window's weight drops by one whole
    # request, or when the current window ends, whichever comes first. The
    # script leaves the current window with between one and two windows to
    # live, the second being its time as the previous one. (limits takes the
    # ttl modulo the window, which says 0 s for a window just started.)
    previous_frees_in = previous_ttl % (window / previous) if previous else math.inf
    current_ends_in = max(0.0, current_ttl - window) if current else math.inf
    return WindowStats(now + min(previous_frees_in, current_ends_in), remaining)
