"""What the rate limiter adds to a request: median latency with and without it.

Serves `GET /api/v1/items` (authenticated, five items) from four copies of
the app built in this process, on one SQLite file: limits switched off,
limits in process memory, limits in Redis as shipped (one round trip), and
limits in Redis in two round trips (count, then read the window: what
limits' own calls take), for comparison. Requests go to the four in turn, so
drift (CPU frequency, caches) hits all alike. Starts nothing external: Redis
must already be running.

    .venv/bin/python bench/ratelimit.py [--requests 3000] [--redis-url redis://127.0.0.1:6379/14]

The Redis database given is flushed before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import AsyncExitStack

import httpx
from asgi_lifespan import LifespanManager
from limits import RateLimitItem
from limits.util import WindowStats
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cli import migrate
from app.core.config import Settings
from app.core.ratelimit.redis_window import KEY_PREFIX, RedisWindows, Strategy
from app.main import create_app
from bench._fixtures import token_for

WARM_UP = 200


class TwoTrips(RedisWindows):
    """Count, then read the window: the two calls limits' own API makes."""

    async def hit(
        self, strategy: Strategy, item: RateLimitItem, *identifiers: str, cost: int = 1
    ) -> tuple[bool, WindowStats]:
        allowed, _ = await super().hit(strategy, item, *identifiers, cost=cost)
        _, stats = await self.test(strategy, item, *identifiers)
        return allowed, stats


def settings_for(database_url: str, **overrides: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=database_url,
        secret_key=SecretStr("benchmark-secret-key-that-is-long-enough-012345"),
        log_level="WARNING",
        log_format="json",
        # High enough that no request is refused: the cost measured is the counting.
        rate_limit_default="100000000/minute",
        # Patient, so no check is skipped by the fail-open policy and timed as free.
        rate_limit_storage_timeout_seconds=1.0,
        **overrides,
    )


async def run(requests: int, redis_url: str) -> dict[str, list[float]]:
    redis = Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await redis.flushdb()
    except RedisError as exc:
        raise SystemExit(f"Redis does not answer at {redis_url} ({exc}); start it first") from exc
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{directory}/bench.db"
        await asyncio.to_thread(migrate, settings_for(database_url))
        variants = {
            "off": settings_for(database_url, rate_limit_enabled=False),
            "memory": settings_for(database_url),
            "redis": settings_for(database_url, redis_url=redis_url),
            "redis-2rt": settings_for(database_url, redis_url=redis_url),
        }
        async with AsyncExitStack() as stack:
            clients: dict[str, httpx.AsyncClient] = {}
            for name, settings in variants.items():
                app = create_app(settings)
                await stack.enter_async_context(LifespanManager(app))
                if name == "redis-2rt":
                    limiter = app.state.resources.rate_limiter
                    limiter._shared = TwoTrips(app.state.resources.redis, KEY_PREFIX)
                clients[name] = await stack.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://bench"
                    )
                )
            token = await token_for(clients["off"])
            headers = {"Authorization": f"Bearer {token}"}
            samples: dict[str, list[float]] = {name: [] for name in clients}
            for turn in range(WARM_UP + requests):
                for name, http in clients.items():
                    started = time.perf_counter()
                    answer = await http.get("/api/v1/items", headers=headers)
                    elapsed = time.perf_counter() - started
                    if answer.status_code != 200:
                        raise SystemExit(f"{name}: unexpected {answer.status_code}: {answer.text}")
                    if turn >= WARM_UP:
                        samples[name].append(elapsed)
                    if name.startswith("redis") and "X-RateLimit-Remaining" not in answer.headers:
                        raise SystemExit(f"{name}: the limiter did not answer (is Redis up?)")
    await redis.flushdb()
    await redis.aclose()
    return samples


def report(samples: dict[str, list[float]], requests: int, redis_url: str) -> None:
    off = statistics.median(samples["off"])
    print(f"GET /api/v1/items, {requests} requests per variant, interleaved; Redis at {redis_url}")
    print(f"{'limits':<10} {'median ms':>10} {'p90 ms':>8} {'added ms':>9} {'ratio':>6}")
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(
            f"{name:<10} {median * 1000:>10.3f} {p90 * 1000:>8.3f}"
            f" {(median - off) * 1000:>+9.3f} {median / off:>6.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be between 1 and 100000")
    report(asyncio.run(run(args.requests, args.redis_url)), args.requests, args.redis_url)


if __name__ == "__main__":
    main()
