"""How long rate-limit checks on Redis take under a burst, and how many each timeout would miss.

RATE_LIMIT_STORAGE_TIMEOUT_SECONDS bounds every check. A check that misses
it is not lost (the login, lockout, registration and reset limits then count
in the process, the default limit follows RATE_LIMIT_FAIL_OPEN), but the
budget should hold on a loaded machine, or replicas stop sharing counts
exactly when load is high. The time measured is what the timeout sees: the
Redis round trip plus the wait for the event loop, which a burst of
requests (argon2 hashes in threads included) keeps busy.

Serves bursts of concurrent requests (failed logins, password-reset
requests, authenticated item reads) to one app on Redis with a patient
timeout, records how long every check took, and prints the share of checks
each candidate timeout would have cut short. Run it alone and again next to
the test suite (`make test`) to see the machine under load.

With `--hung`, it measures the other side of the trade: what each candidate
timeout costs the requests themselves while Redis hangs (a local port that
accepts connections and never answers), as the latency of the same bursts.

    .venv/bin/python bench/storage_timeout.py [--bursts 30] [--burst-size 50] \
        [--redis-url redis://127.0.0.1:6379/14] [--hung]

The Redis database given is flushed before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TypeVar

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cli import migrate
from app.core.config import Settings
from app.core.ratelimit.guard import StorageGuard
from app.main import create_app
from bench._fixtures import token_for

T = TypeVar("T")
CANDIDATES = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
PATIENT = 2.0
ADDRESSES = 200


def settings_for(database_url: str, redis_url: str | None, timeout: float = PATIENT) -> Settings:
    generous = "100000000/minute"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="test",
        database_url=database_url,
        redis_url=redis_url,
        secret_key=SecretStr("benchmark-secret-key-that-is-long-enough-012345"),
        log_level="WARNING",
        log_format="json",
        # Nothing is refused, so every request pays for full checks.
        rate_limit_default=generous,
        rate_limit_login=generous,
        rate_limit_password_reset=generous,
        login_lockout_client="100000000/15 minutes",
        # Patient, so every check is timed to its end instead of cut short.
        rate_limit_storage_timeout_seconds=timeout,
    )


def record_durations(guard: StorageGuard, durations: list[float]) -> None:
    """Time every call the guard lets through; failures are not timings."""
    call = guard.call

    async def timed(limit: str, operation: Callable[[], Awaitable[T]]) -> T | None:
        started = time.perf_counter()
        result = await call(limit, operation)
        if result is not None:
            durations.append(time.perf_counter() - started)
        return result

    guard.call = timed  # type: ignore[method-assign]


async def burst(
    clients: list[httpx.AsyncClient], size: int, headers: dict[str, str], turn: int
) -> list[float]:
    """Each request's latency."""

    async def one(n: int) -> float:
        started = time.perf_counter()
        http = clients[(turn * size + n) % len(clients)]
        kind = n % 10
        if kind == 0:
            form = {"username": f"nobody-{turn}-{n}@example.com", "password": "wrong-password"}
            answer = await http.post("/api/v1/auth/token", data=form)
            expected = 401
        elif kind == 1:
            reset = {"email": f"nobody-{turn}-{n}@example.com"}
            answer = await http.post("/api/v1/auth/password-reset/request", json=reset)
            expected = 202
        else:
            answer = await http.get("/api/v1/items", headers=headers)
            expected = 200
        if answer.status_code != expected:
            raise SystemExit(f"unexpected {answer.status_code}: {answer.text}")
        return time.perf_counter() - started

    return list(await asyncio.gather(*(one(n) for n in range(size))))


async def run(bursts: int, size: int, redis_url: str) -> list[float]:
    redis = Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await redis.flushdb()
    except RedisError as exc:
        raise SystemExit(f"Redis does not answer at {redis_url} ({exc}); start it first") from exc
    durations: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{directory}/bench.db"
        settings = settings_for(database_url, redis_url)
        await asyncio.to_thread(migrate, settings)
        app = create_app(settings)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(LifespanManager(app))
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app, client=(f"10.0.0.{n}", 1)),
                        base_url="http://bench",
                    )
                )
                for n in range(1, ADDRESSES + 1)
            ]
            headers = {"Authorization": f"Bearer {await token_for(clients[0])}"}
            await burst(clients, size, headers, -1)  # warm-up, not recorded
            record_durations(app.state.resources.rate_limiter._guard, durations)
            for turn in range(bursts):
                await burst(clients, size, headers, turn)
    await redis.flushdb()
    await redis.aclose()
    return durations


async def hung(bursts: int, size: int) -> dict[float, list[float]]:
    """Request latencies with each candidate timeout while Redis accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    silent = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    latencies: dict[float, list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{directory}/bench.db"
        await asyncio.to_thread(migrate, settings_for(database_url, silent))
        # 0: no Redis at all, counted in the process; the baseline.
        for timeout in (0, 0.01, 0.1, 0.25, 0.5, 1.0):
            app = create_app(settings_for(database_url, silent if timeout else None, timeout or 1))
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(LifespanManager(app))
                clients = [
                    await stack.enter_async_context(
                        httpx.AsyncClient(
                            transport=httpx.ASGITransport(app=app, client=(f"10.0.1.{n}", 1)),
                            base_url="http://bench",
                        )
                    )
                    for n in range(1, ADDRESSES + 1)
                ]
                headers = {"Authorization": f"Bearer {await token_for(clients[0])}"}
                latencies[timeout] = []
                for turn in range(bursts):
                    latencies[timeout] += await burst(clients, size, headers, turn)
    for writer in held:
        writer.close()
    server.close()
    return latencies


def report_hung(latencies: dict[float, list[float]], bursts: int, size: int) -> None:
    print(f"Redis hung; {bursts} bursts of {size} concurrent requests per timeout")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("timeout 0 is the baseline: no Redis, every limit counted in the process")
    header = f"{'timeout s':>10} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(f"{header} {'median ratio':>13}")
    baseline = statistics.median(latencies[0])
    for timeout, values in latencies.items():
        cuts = statistics.quantiles(values, n=100)
        print(
            f"{timeout:>10} {cuts[49] * 1000:>10.1f} {cuts[89] * 1000:>8.1f}"
            f" {cuts[98] * 1000:>8.1f} {max(values) * 1000:>8.1f} {cuts[49] / baseline:>13.2f}"
        )


def report(durations: list[float], bursts: int, size: int) -> None:
    durations.sort()
    cuts = statistics.quantiles(durations, n=100)
    print(f"{len(durations)} checks in {bursts} bursts of {size} concurrent requests")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"ms: median {cuts[49] * 1000:.2f}, p90 {cuts[89] * 1000:.2f}, "
        f"p99 {cuts[98] * 1000:.2f}, max {durations[-1] * 1000:.2f}"
    )
    print(f"{'timeout s':>10} {'checks over':>12} {'share':>8}")
    for candidate in CANDIDATES:
        over = sum(1 for d in durations if d > candidate)
        print(f"{candidate:>10} {over:>12} {over / len(durations):>8.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=30)
    parser.add_argument("--burst-size", type=int, default=50)
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--hung", action="store_true", help="measure a hung Redis's cost")
    args = parser.parse_args()
    if not (1 <= args.bursts <= 1000 and 1 <= args.burst_size <= 500):
        parser.error("--bursts must be 1-1000 and --burst-size 1-500")
    if args.hung:
        report_hung(asyncio.run(hung(args.bursts, args.burst_size)), args.bursts, args.burst_size)
        return
    durations = asyncio.run(run(args.bursts, args.burst_size, args.redis_url))
    report(durations, args.bursts, args.burst_size)


if __name__ == "__main__":
    main()
