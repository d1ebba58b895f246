"""The limits counted in Redis: our own scripts, over our own keys, on the app's own Redis.

`limits` counts a request (`hit`) and reports what is left
(`get_window_stats`) in two calls, each a round trip, and every API request
needs both: the X-RateLimit-* headers are on every answer. Each script here
counts and reports in one trip. The counting rules are limits' own (its
sliding-window counter, moving window and fixed window give the same
answers; tests/core/test_ratelimit.py holds each script to limits' answers),
but the keys, their layout and the client belong to this module alone, so
nothing here leans on how limits stores its counters or builds its client.
In process memory, limits itself counts (limiter.py). Each script call is
packed here and sent on the limiter's own connections (connections.py),
which spares it most of the client's work per command.

Keys: `<prefix>:<strategy>:{<identifiers>/<amount>/<seconds>}` plus a
suffix per stored value. The braces make every key of one counter hash to
one Redis Cluster slot; amount and window in the key start a fresh count
when a limit's setting changes.
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager
from typing import Any, Literal

from limits import RateLimitItem
from limits.util import WindowStats
from opentelemetry.trace import Tracer
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from app.core.ratelimit.connections import Connections

# Every key this project writes to Redis for limits starts so (the lockout's too).
KEY_PREFIX = "groundwork:ratelimit"
Strategy = Literal["sliding-window-counter", "moving-window", "fixed-window"]

# Every script: ARGV limit, window in ms, cost (0 reads without counting).
# Every answer: {allowed, then what `_stats` needs for that strategy}.

# KEYS: the previous and the current window.
# Answers {allowed, previous count, its ttl, current count, its ttl}, ttls in ms.
_SLIDING = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
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
if cost == 0 then
    return {weighted < limit and 1 or 0, previous, previous_ttl, current, current_ttl}
end
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

# KEYS: a sorted set of entries scored by their time in ms; ARGV[4] names this
# request's entries. The clock is Redis's own, one for every replica.
# Answers {allowed, entries in the window, the oldest one's age in ms}.
_MOVING = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

redis.call('zremrangebyscore', KEYS[1], '-inf', now - window)
local count = redis.call('zcard', KEYS[1])
local allowed = count + cost <= limit and cost <= limit
if cost == 0 then
    allowed = count < limit
elseif allowed then
    for i = 1, cost do
        redis.call('zadd', KEYS[1], now, ARGV[4] .. ':' .. i)
    end
    redis.call('pexpire', KEYS[1], window)
    count = count + cost
end
local oldest = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
local age = oldest[2] and (now - tonumber(oldest[2])) or -1
return {allowed and 1 or 0, count, age}
"""

# KEYS: the window's counter. Like limits, a refused request is counted too.
# Answers {allowed, the count, its ttl in ms}.
_FIXED = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local count
if cost == 0 then
    count = tonumber(redis.call('get', KEYS[1])) or 0
    return {count < limit and 1 or 0, count, math.max(redis.call('pttl', KEYS[1]), 0)}
end
count = redis.call('incrby', KEYS[1], cost)
if count == cost then
    redis.call('pexpire', KEYS[1], window)
end
return {count <= limit and 1 or 0, count, math.max(redis.call('pttl', KEYS[1]), 0)}
"""

_SCRIPTS: dict[Strategy, str] = {
    "sliding-window-counter": _SLIDING,
    "moving-window": _MOVING,
    "fixed-window": _FIXED,
}
_SUFFIXES: dict[Strategy, tuple[str, ...]] = {
    "sliding-window-counter": ("previous", "current"),
    "moving-window": ("entries",),
    "fixed-window": ("count",),
}


class RedisWindows:
    """Count, read and clear a limit in Redis, each in one round trip."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._key_prefix = key_prefix
        # redis-py sends a script's hash and loads the script only when Redis lacks it.
        self._scripts = {name: redis.register_script(text) for name, text in _SCRIPTS.items()}
        self._connections = Connections(redis)
        self._counters: dict[tuple[Strategy, RateLimitItem], Counter] = {}

    def counter(self, strategy: Strategy, item: RateLimitItem) -> Counter:
        """One limit's counters, its keys and its script call prepared once."""
        counter = self._counters.get((strategy, item))
        if counter is None:
            script = self._scripts[strategy]
            counter = Counter(strategy, item, self._key_prefix, script, self._connections)
            self._counters[(strategy, item)] = counter
        return counter

    async def hit(
        self, strategy: Strategy, item: RateLimitItem, *identifiers: str, cost: int = 1
    ) -> tuple[bool, WindowStats]:
        """Count `cost` against the window if it fits; the window's state after the attempt."""
        return await self.counter(strategy, item).hit(identifiers, cost)

    async def test(
        self, strategy: Strategy, item: RateLimitItem, *identifiers: str
    ) -> tuple[bool, WindowStats]:
        """Whether one more request would fit, and the window's state, counting nothing."""
        return await self.counter(strategy, item).hit(identifiers, 0)

    async def clear(self, strategy: Strategy, item: RateLimitItem, *identifiers: str) -> None:
        await self._redis.delete(*self.keys(strategy, item, *identifiers))

    def keys(self, strategy: Strategy, item: RateLimitItem, *identifiers: str) -> list[str]:
        """Where one counter lives (sliding window: the previous window, then the current)."""
        return self.counter(strategy, item).keys(identifiers)

    def traced(self, tracer: Tracer | None) -> AbstractContextManager[None]:
        """Spans for the script calls of sampled requests, while the block runs."""
        return self._connections.traced(tracer)

    async def aclose(self) -> None:
        await self._connections.aclose()


class Counter:
    """One limit in Redis: the script call for any identifiers, packed from parts made once."""

    def __init__(
        self,
        strategy: Strategy,
        item: RateLimitItem,
        key_prefix: str,
        script: AsyncScript,
        connections: Connections,
    ) -> None:
        self.strategy = strategy
        self.item = item
        self._connections = connections
        self._window_ms = item.get_expiry() * 1000
        self._key_head = f"{key_prefix}:{strategy}:{{"
        self._key_tail = f"{item.amount}/{item.get_expiry()}"
        self._suffixes = _SUFFIXES[strategy]
        self._moving = strategy == "moving-window"
        # Moving window: ARGV[4] names this request's entries. They must
        # differ within one counter; a counter per process and a
        # time-derived prefix keep two replicas' entries apart.
        self._sequence = 0
        # EVALSHA, the hash, the number of keys, the keys, then ARGV.
        arguments = 2 + len(self._suffixes) + (4 if self._moving else 3)
        length = b"*%d\r\n" % (1 + arguments)
        self._evalsha = length + _bulk(b"EVALSHA") + _bulk(script.sha.encode())
        text = script.script if isinstance(script.script, bytes) else str(script.script).encode()
        self._eval = length + _bulk(b"EVAL") + _bulk(text)
        self._key_count = _bulk(b"%d" % len(self._suffixes))
        self._limit_and_window = _bulk(b"%d" % item.amount) + _bulk(b"%d" % self._window_ms)
        self._evalsha_span = connections.span_attributes("EVALSHA", arguments)
        self._eval_span = connections.span_attributes("EVAL", arguments)

    def keys(self, identifiers: tuple[str, ...]) -> list[str]:
        counter = "/".join((*identifiers, self._key_tail))
        return [f"{self._key_head}{counter}}}:{suffix}" for suffix in self._suffixes]

    async def hit(self, identifiers: tuple[str, ...], cost: int) -> tuple[bool, WindowStats]:
        """Count `cost` (0: only read) against the window of `identifiers`; its state after."""
        keys = self.keys(identifiers)
        extra: tuple[str, ...] = ()
        if self._moving:
            self._sequence += 1
            extra = (f"{time.time_ns():x}.{id(self):x}.{self._sequence}",)
        answer = await self._call(keys, cost, extra)
        values = [int(v) for v in answer]
        return bool(values[0]), _stats(self.strategy, self.item, values[1:])

    async def _call(self, keys: list[str], cost: int, extra: tuple[str, ...]) -> Any:
        operands = b"".join(
            (
                self._key_count,
                *[_bulk(key.encode()) for key in keys],
                self._limit_and_window,
                _COSTS.get(cost) or _bulk(b"%d" % cost),
                *[_bulk(value.encode()) for value in extra],
            )
        )
        try:
            return await self._connections.call(
                self._evalsha + operands, "EVALSHA", self._evalsha_span
            )
        except NoScriptError:
            # Redis restarted, failed over or was flushed: EVAL sends the
            # script itself, and Redis keeps it for the next EVALSHA.
            return await self._connections.call(self._eval + operands, "EVAL", self._eval_span)


def _bulk(value: bytes) -> bytes:
    """One argument of a command in the Redis protocol (RESP)."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


_COSTS = {cost: _bulk(b"%d" % cost) for cost in (0, 1)}


def _stats(strategy: Strategy, item: RateLimitItem, values: list[int]) -> WindowStats:
    now = time.time()
    if strategy == "moving-window":
        count, oldest_age_ms = values
        # The next slot frees when the oldest entry leaves the window (limits
        # says a whole window from now for an empty one).
        reset = now + item.get_expiry() - (oldest_age_ms / 1000 if count else 0)
        return WindowStats(reset, max(0, item.amount - count))
    if strategy == "fixed-window":
        count, ttl_ms = values
        return WindowStats(now + ttl_ms / 1000, max(0, item.amount - count))
    previous, previous_ttl_ms, current, current_ttl_ms = values
    return _sliding_stats(item, previous, previous_ttl_ms / 1000, current, current_ttl_ms / 1000)


def _sliding_stats(
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
