"""What the login lockout's counting costs one failed sign-in: before and after counting first.

Before, a sign-in peeked at the account's and the client's counters (`test`,
two calls) and, once the password had failed, counted both (`hit`, two
more), on limits' moving window. Now one call counts both before the
password is checked (one Lua script on Redis), and the process keeps its own
count too. Both are timed here on the limiter of one app, on the in-process
storage and on Redis, interleaved so drift hits all alike; fresh account and
client keys each time, so nothing is refused.

    .venv/bin/python bench/lockout.py [--attempts 3000] [--redis-url redis://127.0.0.1:6379/14]

The Redis database given is flushed before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.config import Settings
from app.core.ratelimit import LimitName, RateLimiter, rules_from

WARM_UP = 200
ACCOUNT, CLIENT = LimitName.LOGIN_LOCKOUT_ACCOUNT, LimitName.LOGIN_LOCKOUT_CLIENT


def limiter_for(redis: Redis | None) -> RateLimiter:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        secret_key=SecretStr("benchmark-secret-key-that-is-long-enough-012345"),
        # Patient, so no call is skipped and timed as free.
        rate_limit_storage_timeout_seconds=1.0,
    )
    return RateLimiter(redis, rules_from(settings), timeout_seconds=1.0, fail_open=True)


def peek_then_count(limiter: RateLimiter) -> Callable[[int], Awaitable[None]]:
    async def failed_sign_in(n: int) -> None:
        email, client = f"user{n}@example.com", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        for name, key in ((ACCOUNT, email), (CLIENT, client)):
            await limiter.test(name, key)
        for name, key in ((ACCOUNT, email), (CLIENT, client)):
            await limiter.hit(name, key)

    return failed_sign_in


def count_first(limiter: RateLimiter) -> Callable[[int], Awaitable[None]]:
    async def failed_sign_in(n: int) -> None:
        email, client = f"user{n}@example.com", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        await limiter.lockout.attempt(email, client)

    return failed_sign_in


async def run(attempts: int, redis_url: str) -> dict[str, list[float]]:
    redis = Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await redis.flushdb()
    except RedisError as exc:
        raise SystemExit(f"Redis does not answer at {redis_url} ({exc}); start it first") from exc
    memory, shared = limiter_for(None), limiter_for(redis)
    variants = {
        "memory, peek then count (before)": peek_then_count(memory),
        "memory, count first (now)": count_first(memory),
        "Redis, peek then count (before)": peek_then_count(shared),
        "Redis, count first (now)": count_first(shared),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for n in range(WARM_UP + attempts):
        for name, failed_sign_in in variants.items():
            started = time.perf_counter()
            await failed_sign_in(n)
            if n >= WARM_UP:
                samples[name].append(time.perf_counter() - started)
    for limiter in (memory, shared):
        await limiter.aclose()
    await redis.flushdb()
    await redis.aclose()
    return samples


def report(samples: dict[str, list[float]], attempts: int) -> None:
    print(f"lockout counting per failed sign-in, {attempts} attempts per variant, interleaved")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'variant':<34} {'median us':>10} {'p90 us':>8}")
    for name, values in samples.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<34} {statistics.median(values) * 1e6:>10.1f} {p90 * 1e6:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=3000)
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    if not 1 <= args.attempts <= 100_000:
        parser.error("--attempts must be between 1 and 100000")
    report(asyncio.run(run(args.attempts, args.redis_url)), args.attempts)


if __name__ == "__main__":
    main()
