"""What logs, metrics and traces cost: throughput of the items list with all three on, and off.

Starts two uvicorn servers (one worker each) on free 127.0.0.1 ports, on one
migrated SQLite file, and drives `GET /api/v1/items` (authenticated, five
items) at both, in alternating rounds so drift hits both alike:

- off: no observing middleware, tracing off, log level WARNING;
- on:  JSON access line per request (to a file), Prometheus metrics, and
       traces sampled at the documented production ratio
       (parentbased_traceidratio, 0.1), exported over OTLP/HTTP to a dummy
       collector this script runs on 127.0.0.1. Nothing leaves the machine.

    .venv/bin/python bench/observability.py [--requests 500] [--rounds 12] [--concurrency 1]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/groundwork_bench]

Prints requests per second for each round, the medians, and the cost. On the
default SQLite file keep --concurrency at 1: SQLite takes its write lock at
BEGIN, so concurrent requests measure lock waits, not the server. With
--database-url (an existing database of its own; it is migrated, and the
bench user and items are added) use 8 or more.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import migrate  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.middleware import build_middleware  # noqa: E402
from app.main import create_app  # noqa: E402
from bench._fixtures import token_for  # noqa: E402
from bench._processes import Server, running, uvicorn_command  # noqa: E402

SECRET_KEY = "benchmark-secret-key-that-is-long-enough-012345"
PRODUCTION_SAMPLER = ("parentbased_traceidratio", "0.1")
WARM_UP = 300
IN_PROCESS_WARM_UP = 20


def app_without_observability() -> FastAPI:
    """The `off` server: the app minus the middleware that logs and counts each request."""
    app = create_app()
    app.user_middleware = build_middleware(Settings(), observe=False)
    return app


class _Collector(BaseHTTPRequestHandler):
    """Answers OTLP/HTTP exports with 200 and drops them."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def dummy_collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def server(factory: str, env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """`factory` under uvicorn, without access log, from start to its first live answer."""
    command = uvicorn_command(factory)
    with running(command, env, "/health/live", log_path) as started:
        yield started


async def throughput(base: str, token: str, requests: int, concurrency: int) -> float:
    """Requests per second for `requests` answers, `concurrency` at a time on keep-alive."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await http.get("/api/v1/items")
                if response.status_code != 200:
                    raise SystemExit(f"{base}: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


async def environments(database_url: str, collector: str) -> tuple[dict[str, str], dict[str, str]]:
    """The settings of the off and on servers, after migrating the database."""
    common = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        # Both alike, so the difference is observability alone.
        "RATE_LIMIT_ENABLED": "false",
    }
    await asyncio.to_thread(migrate, settings_from(common))
    off_env = {**common, "LOG_LEVEL": "WARNING"}
    on_env = {
        **common,
        "LOG_LEVEL": "INFO",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
        "OTEL_SERVICE_NAME": "groundwork-bench",
        "OTEL_TRACES_SAMPLER": PRODUCTION_SAMPLER[0],
        "OTEL_TRACES_SAMPLER_ARG": PRODUCTION_SAMPLER[1],
    }
    return off_env, on_env


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **{key.lower(): value for key, value in env.items()})  # type: ignore[call-arg,arg-type]


async def in_process(args: argparse.Namespace) -> None:
    """Serve one variant in this process, for an instruction counter (see docs/benchmarks.md).

    Wall time on a shared machine swings more than observability costs;
    instructions do not. Run it twice with different --requests under
    `valgrind --tool=callgrind`: the difference divided by the difference in
    requests is the instructions one request takes.
    """
    with tempfile.TemporaryDirectory() as directory, dummy_collector() as collector:
        folder = Path(directory)
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        off_env, on_env = await environments(database_url, collector)
        settings = settings_from(on_env if args.in_process == "on" else off_env)
        app = create_app(settings)
        if args.in_process == "off":
            app.user_middleware = build_middleware(settings, observe=False)
        # Written to a file, as the subprocess servers' lines are.
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream((folder / "in-process.log").open("w"))
        # The client's own request lines are not the server's cost.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        transport = httpx.ASGITransport(app=app)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as http,
        ):
            token = await token_for(http)
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(IN_PROCESS_WARM_UP + args.requests):
                response = await http.get("/api/v1/items", headers=headers)
                response.raise_for_status()


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory, dummy_collector() as collector:
        folder = Path(directory)
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        off_env, on_env = await environments(database_url, collector)
        with (
            server(
                "bench.observability:app_without_observability", off_env, folder / "off.log"
            ) as off,
            server("app.main:create_app", on_env, folder / "on.log") as on,
        ):
            async with httpx.AsyncClient(base_url=on.base) as http:
                token = await token_for(http)
            servers = {"off": off, "on": on}
            for each in servers.values():
                await throughput(each.base, token, WARM_UP, args.concurrency)
            results: dict[str, list[float]] = {"off": [], "on": []}
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            for round_number in range(1, args.rounds + 1):
                # Alternate who goes first, so neither always runs on a warmer box.
                order = ["off", "on"] if round_number % 2 else ["on", "off"]
                for name in order:
                    each = servers[name]
                    cpu_before = each.cpu_seconds()
                    rate = await throughput(each.base, token, args.requests, args.concurrency)
                    cpu_after = each.cpu_seconds()
                    results[name].append(rate)
                    line = f"round {round_number}  {name:>3}: {rate:8.1f} req/s"
                    if cpu_before is not None and cpu_after is not None:
                        cpu[name].append(1e6 * (cpu_after - cpu_before) / args.requests)
                        line += f"  {cpu[name][-1]:7.0f} µs server CPU per request"
                    print(line, flush=True)
        access_lines = sum(
            1 for line in (folder / "on.log").read_text().splitlines() if '"http.request"' in line
        )

    off_rate, on_rate = (statistics.median(results[name]) for name in ("off", "on"))
    # Each round's two runs are neighbours in time: their ratio cancels the
    # drift of a shared machine better than two medians do.
    paired = sorted(
        100 * (1 - on / off) for off, on in zip(results["off"], results["on"], strict=True)
    )
    print()
    print(
        f"GET /api/v1/items on {database_url.split(':', 1)[0]}, {args.requests} requests x "
        f"{args.rounds} rounds, concurrency {args.concurrency}, one uvicorn worker each"
    )
    print(f"  observability off: {off_rate:8.1f} req/s (median)")
    print(f"  observability on:  {on_rate:8.1f} req/s (median)")
    print(
        f"  cost: {statistics.median(paired):.1f} % of throughput (median of the rounds' "
        f"paired costs; middle half {paired[len(paired) // 4]:.1f} to "
        f"{paired[(3 * len(paired)) // 4]:.1f} %)"
    )
    if cpu["off"] and cpu["on"]:
        off_cpu, on_cpu = (statistics.median(cpu[name]) for name in ("off", "on"))
        print(
            f"  server CPU per request: {off_cpu:.0f} µs off, {on_cpu:.0f} µs on "
            f"(+{on_cpu - off_cpu:.0f} µs, {100 * (on_cpu - off_cpu) / off_cpu:.1f} %)"
        )
    print(f"  on: {access_lines} access lines written, {_Collector.received} OTLP exports received")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per round and server")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument(
        "--in-process",
        choices=["off", "on"],
        help="serve only this variant, in this process, for --requests requests (no timing)",
    )
    args = parser.parse_args()
    asyncio.run(in_process(args) if args.in_process else measure(args))


if __name__ == "__main__":
    main()
