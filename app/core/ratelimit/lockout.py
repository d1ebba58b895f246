"""The login lockout: sign-in attempts per account and per client, counted before checking.

An attempt is counted first and the password checked after, so however many
guesses arrive at once, only as many as the limit get as far as the hasher.
A success clears the account's counter and takes its own attempt back from
the client's, so an office behind one address is held to LOGIN_LOCKOUT_CLIENT
failures, not successes. The counters are a log of attempts (each an id and a
time) rather than `limits`' windows, because a success must remove exactly the
attempt it counted.

Counters are keyed on a SHA-256 digest, never on the text a client sent, so a
key is the same size whatever the username. When the shared storage fails or
is slow, the attempt is counted in this process instead. Every attempt is
counted here as well, and refused when this process alone has seen too many,
so a storage that comes and goes cannot hand out a fresh budget.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from limits import RateLimitItem
from redis.asyncio import Redis

from app.core.clock import Clock
from app.core.errors import RateLimited
from app.core.ratelimit.guard import StorageGuard
from app.core.ratelimit.metrics import LOCAL_FALLBACKS
from app.core.ratelimit.redis_window import KEY_PREFIX

LIMIT_NAME = "login-lockout"
# One hash tag for every lockout counter: the script touches the account's and
# the client's in one step, which Redis Cluster allows only within one slot.
# Sign-in attempts are few enough for one slot.
_KEY_PREFIX = f"{KEY_PREFIX}:{{lockout}}"
# How often the in-process counters drop the attempts that have aged out.
_SWEEP_SECONDS = 60.0
# At most this many in-process counters, about 60 MB at full size.
_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: float

    @classmethod
    def of(cls, item: RateLimitItem) -> Window:
        return cls(limit=item.amount, seconds=float(item.get_expiry()))


Counters = Sequence[tuple[str, Window]]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One counted sign-in attempt; hand it back through `LoginLockout.succeeded`."""

    account: str
    client: str
    id: str = field(default_factory=lambda: secrets.token_hex(8))


class LockedOut(RateLimited):
    def __init__(self, wait_seconds: float) -> None:
        super().__init__(
            "Too many failed sign-ins; wait before trying again.",
            retry_after_seconds=math.ceil(wait_seconds),
        )


class MemoryCounters:
    """Attempt logs in this process. Each call runs without yielding, so it is atomic.

    Held to `capacity` counters: any email can open one, and with Redis
    configured this count runs next to it for every attempt. Past it, the
    counter opened longest ago goes; a sweep each minute drops the aged-out.
    """

    def __init__(self, capacity: int = _CAPACITY, *, clock: Clock | None = None) -> None:
        self._capacity = capacity
        self._clock = clock or Clock()
        # key -> (window in seconds, [(time, attempt id), ...] oldest first)
        self._logs: dict[str, tuple[float, list[tuple[float, str]]]] = {}
        self._next_sweep = self._clock.monotonic() + _SWEEP_SECONDS

    def attempt(self, counters: Counters, attempt_id: str) -> float:
        """Count the attempt on every counter if all have room: 0.0, else the seconds to wait."""
        now = self._clock.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        wait = 0.0
        for key, window in counters:
            log = self._live(key, now)
            if len(log) >= window.limit:
                frees_at = log[len(log) - window.limit][0] + window.seconds
                wait = max(wait, frees_at - now)
        if wait > 0:
            return wait
        for key, window in counters:
            self._open(key, window.seconds, now).append((now, attempt_id))
        return 0.0

    def give_back(self, key: str, attempt_id: str) -> None:
        entry = self._logs.get(key)
        if entry is not None:
            log = entry[1]
            for index, (_, counted) in enumerate(log):
                if counted == attempt_id:
                    del log[index]
                    break

    def forget(self, key: str) -> None:
        self._logs.pop(key, None)

    def _live(self, key: str, now: float) -> list[tuple[float, str]]:
        """The attempts of `key` still inside its window (none for a key never seen)."""
        entry = self._logs.get(key)
        if entry is None:
            return []
        seconds, log = entry
        aged = 0
        while aged < len(log) and log[aged][0] <= now - seconds:
            aged += 1
        del log[:aged]
        return log

    def _open(self, key: str, seconds: float, now: float) -> list[tuple[float, str]]:
        entry = self._logs.get(key)
        if entry is not None:
            return entry[1]
        if len(self._logs) >= self._capacity:
            # Dicts keep insertion order: the first key is the oldest counter.
            del self._logs[next(iter(self._logs))]
        log: list[tuple[float, str]] = []
        self._logs[key] = (seconds, log)
        return log

    def _sweep(self, now: float) -> None:
        """Drop every counter whose attempts have all aged out (unknown emails leave many)."""
        self._next_sweep = now + _SWEEP_SECONDS
        aged = [key for key, (seconds, log) in self._logs.items() if _aged_out(log, seconds, now)]
        for key in aged:
            del self._logs[key]


def _aged_out(log: list[tuple[float, str]], seconds: float, now: float) -> bool:
    return not log or log[-1][0] <= now - seconds


# KEYS: the counters (sorted sets of attempt ids scored by time in ms).
# ARGV: the attempt's id, then each counter's limit and window in ms.
# Answers 0 when counted, else the milliseconds until every counter has room.
_ATTEMPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[2 * i])
    local window = tonumber(ARGV[2 * i + 1])
    redis.call('zremrangebyscore', key, '-inf', now - window)
    local count = redis.call('zcard', key)
    if count >= limit then
        local frees = redis.call('zrange', key, count - limit, count - limit, 'WITHSCORES')
        wait = math.max(wait, tonumber(frees[2]) + window - now)
    end
end
if wait > 0 then
    return wait
end
for i, key in ipairs(KEYS) do
    redis.call('zadd', key, now, ARGV[1])
    redis.call('pexpire', key, tonumber(ARGV[2 * i + 1]))
end
return 0
"""


# KEYS: the account's counter, the client's. ARGV: the attempt's id.
_SUCCEEDED = """
redis.call('del', KEYS[1])
redis.call('zrem', KEYS[2], ARGV[1])
return 0
"""


class RedisCounters:
    """The same logs in Redis, shared by every replica; the clock is Redis's own."""

    def __init__(self, redis: Redis) -> None:
        self._attempt = redis.register_script(_ATTEMPT)
        self._succeeded = redis.register_script(_SUCCEEDED)

    async def attempt(self, counters: Counters, attempt_id: str) -> float:
        args: list[str | int] = [attempt_id]
        for _key, window in counters:
            args += [window.limit, math.ceil(window.seconds * 1000)]
        wait_ms = await self._attempt(keys=[key for key, _ in counters], args=args)
        return int(wait_ms) / 1000

    async def succeeded(self, attempt: Attempt) -> None:
        """Forget the account's counter and take the attempt off the client's, in one trip."""
        await self._succeeded(keys=[attempt.account, attempt.client], args=[attempt.id])


class LoginLockout:
    """LOGIN_LOCKOUT_ACCOUNT and LOGIN_LOCKOUT_CLIENT, counted in Redis when given, else here."""

    def __init__(
        self,
        redis: Redis | None,
        guard: StorageGuard,
        *,
        account: RateLimitItem,
        client: RateLimitItem,
        clock: Clock | None = None,
    ) -> None:
        self._guard = guard
        self._account = Window.of(account)
        self._client = Window.of(client)
        self._shared = RedisCounters(redis) if redis is not None else None
        self._local = MemoryCounters(clock=clock)

    async def attempt(self, email: str, client: str) -> Attempt:
        """Count an attempt to prove `email`'s password from `client`; LockedOut when over a limit.

        Counted for emails without an account too, so a lockout does not tell
        which emails have one.
        """
        attempt = Attempt(account=_key("account", email.lower()), client=_key("client", client))
        counters = ((attempt.account, self._account), (attempt.client, self._client))
        wait = await self._count(counters, attempt.id)
        if wait > 0:
            raise LockedOut(wait)
        return attempt

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account starts afresh, the client gets its attempt back."""
        self._local.forget(attempt.account)
        self._local.give_back(attempt.client, attempt.id)
        shared = self._shared
        if shared is not None:
            await self._guard.call(LIMIT_NAME, lambda: shared.succeeded(attempt))

    async def _count(self, counters: Counters, attempt_id: str) -> float:
        shared = self._shared
        if shared is None:
            return self._local.attempt(counters, attempt_id)
        wait = await self._guard.call(LIMIT_NAME, lambda: shared.attempt(counters, attempt_id))
        if wait is None:
            LOCAL_FALLBACKS.labels(limit=LIMIT_NAME).inc()
            return self._local.attempt(counters, attempt_id)
        if wait > 0:
            return wait
        # This process may have counted attempts the shared storage missed
        # while it was out; it refuses only once it has seen too many itself.
        return self._local.attempt(counters, attempt_id)


def _key(kind: str, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{_KEY_PREFIX}:{kind}:{digest}"
