"""The project against a bare FastAPI app doing the same work, side by side under wrk.

Serves the project as production does (`python -m app serve`, APP_ENV=production,
JSON access log, Prometheus metrics in multiprocess mode, traces sampled at
0.1 to a dummy collector on 127.0.0.1, rate limits and lockouts counted in
Redis) and `bench/bare.py` (no middleware), one uvicorn process each, on one
PostgreSQL database, and prints project/bare ratios:

- the authenticated items list (`limit=20`): req/s and p99;
- `/health/live` against the bare app's `/ping`;
- login throughput (form login, argon2id verified);
- `/health/live` p99 during a login storm against idle (project alone);
- a deep keyset page (page 500 of 20 among `--deep-items` items) against the first page;
- cold start: process start to the first 200.

Rounds alternate which server goes first, so a shared machine's drift hits
both alike. The rate limits and lockouts are raised so that nothing is
refused: every request still pays for its Redis check.

    .venv/bin/python bench/compare.py [--seconds 10] [--rounds 3] [--connections 32]
        [--items-only | --items-and-health | --cold-starts-only] [--cold-starts 3]
        [--project-env DB_POOL_PRE_PING=false ...]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/groundwork_bench]
        [--redis-url redis://127.0.0.1:6379/15]

The database is given to the bench alone: created if missing, migrated and
filled (a user with `--deep-items` items, kept between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import migrate  # noqa: E402
from app.core.config import Settings  # noqa: E402
from bench._processes import Server, running, uvicorn_command  # noqa: E402
from bench.observability import dummy_collector  # noqa: E402

EMAIL = "bench@example.com"
PASSWORD = "correct-horse-battery-staple"
UNLIMITED = "1000000/minute"
DEEP_PAGE = 500
PAGE_SIZE = 20
INSTALL_WRK = (
    "wrk is not installed: `sudo apt-get install wrk` (Debian, Ubuntu), "
    "`brew install wrk` (macOS), or build it from https://github.com/wg/wrk"
)


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    # The server's CPU time per answered request (Linux): steadier than req/s
    # when other work shares the machine.
    cpu_ms: float | None = None


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_WRK)
    return path


def wrk(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: Path | None = None
) -> Result:
    command = [
        wrk_path(),
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(  # noqa: S603 - wrk with our own arguments
        [*command, url], capture_output=True, text=True, check=True
    ).stdout
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if refused:
        raise SystemExit(f"{url}: {refused.group(1)} answers were not 2xx:\n{output}")
    errors = re.search(r"Socket errors: (.*)", output)
    if errors:
        print(f"    ({url}: socket errors {errors.group(1)})", flush=True)
    percentile = {
        int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    }
    if 50 not in percentile or 99 not in percentile:
        raise SystemExit(f"{url}: no latency distribution in wrk's output:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return Result(rate, percentile[50], percentile[99], requests)


def project_env(args: argparse.Namespace, collector: str, metrics_dir: Path) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "HOST": "127.0.0.1",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": args.secret,
        "CORS_ORIGINS": "https://app.example.com",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
        "OTEL_SERVICE_NAME": "groundwork-bench",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
        # Counted in Redis as shipped, never refused: refusals would be cheap answers.
        "RATE_LIMIT_DEFAULT": UNLIMITED,
        "RATE_LIMIT_LOGIN": UNLIMITED,
        "LOGIN_LOCKOUT_ACCOUNT": "1000000/15 minutes",
        "LOGIN_LOCKOUT_CLIENT": "1000000/15 minutes",
        "PASSWORD_HASH_QUEUE_LIMIT": "1000",
        # Stopped between measurements: nothing to drain.
        "SHUTDOWN_DRAIN_SECONDS": "0",
    }


def request_parser(description: str, *, requests: int) -> argparse.ArgumentParser:
    """The options of a script that counts what one GET costs, the project's or the bare app's."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("path", help="what to GET, e.g. /health/live")
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--bare", action="store_true", help="bench/bare.py instead of the project")
    parser.add_argument("--login", action="store_true", help="send the bench user's bearer token")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/groundwork_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    return parser


PROJECT = [sys.executable, "-m", "app", "serve"]
BARE = uvicorn_command("bench.bare:create_app", "--log-level", "warning")


async def create_database(database_url: str) -> None:
    """CREATE DATABASE, through the server's `postgres` database, unless it exists."""
    url = make_url(database_url)
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        exists = await connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
        )
        if not exists:
            await connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    await engine.dispose()


async def prepare(args: argparse.Namespace, env: dict[str, str], base: str) -> None:
    """The bench user, and `--deep-items` items of its own (written once, kept)."""
    async with httpx.AsyncClient(base_url=base) as http:
        await http.post("/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD})
    engine = create_async_engine(args.database_url)
    async with engine.begin() as connection:
        owner = (
            await connection.execute(text("SELECT id FROM users WHERE email = :e"), {"e": EMAIL})
        ).scalar_one()
        count = (
            await connection.execute(
                text("SELECT count(*) FROM items WHERE owner_id = :o"), {"o": owner}
            )
        ).scalar_one()
        if count < args.deep_items:
            # One microsecond apart, newest last, as a steady stream of creations would be.
            await connection.execute(
                text(
                    "INSERT INTO items (id, owner_id, title, description, created_at, "
                    "updated_at, version) SELECT gen_random_uuid(), :o, 'item ' || n, NULL, "
                    "now() - make_interval(secs => n / 1000.0), "
                    "now() - make_interval(secs => n / 1000.0), 1 "
                    "FROM generate_series(1, :n) AS n"
                ),
                {"o": owner, "n": args.deep_items - count},
            )
            await connection.execute(text("ANALYZE items"))
    await engine.dispose()


async def login(base: str, path: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        answer = await http.post(path, data={"username": EMAIL, "password": PASSWORD})
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token


async def deep_cursor(base: str, token: str) -> str:
    """The cursor of page DEEP_PAGE, reached by following next_cursor from the first."""
    cursor = ""
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for _ in range(DEEP_PAGE - 1):
            query = f"?limit={PAGE_SIZE}" + (f"&cursor={cursor}" if cursor else "")
            answer = await http.get(f"/api/v1/items{query}")
            answer.raise_for_status()
            cursor = answer.json()["next_cursor"]
    return cursor


Run = tuple[str, dict[str, str], Path | None, Server]


def alternate(rounds: int, runs: dict[str, Run], seconds: int, c: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {name: [] for name in runs}
    names = list(runs)
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            url, headers, script, server = runs[name]
            cpu_before = server.cpu_seconds()
            result = wrk(url, seconds, c, headers, script)
            cpu_after = server.cpu_seconds()
            if cpu_before is not None and cpu_after is not None and result.requests:
                result.cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
            results[name].append(result)
            cpu = f"  cpu {result.cpu_ms:6.3f} ms/req" if result.cpu_ms is not None else ""
            print(
                f"    round {number + 1} {name:>8}: {result.rate:8.1f} req/s  "
                f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms{cpu}",
                flush=True,
            )
    return results


def median(results: list[Result]) -> Result:
    cpu = [r.cpu_ms for r in results if r.cpu_ms is not None]
    return Result(
        statistics.median(r.rate for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        cpu_ms=statistics.median(cpu) if cpu else None,
    )


def report(title: str, results: dict[str, list[Result]], target: str) -> None:
    mine, theirs = (median(results[name]) for name in results)
    rates = [r.rate for r in results[next(iter(results))]]
    ratio = mine.rate / theirs.rate
    print(
        f"  {title}: {mine.rate:.1f} vs {theirs.rate:.1f} req/s -> ratio {ratio:.2f}; "
        f"p99 {mine.p99_ms:.1f} vs {theirs.p99_ms:.1f} ms -> {mine.p99_ms / theirs.p99_ms:.2f}x; "
        f"p50 {mine.p50_ms / theirs.p50_ms:.2f}x{_cpu(mine, theirs)}  "
        f"(rounds {min(rates):.0f}-{max(rates):.0f} req/s; target {target})",
        flush=True,
    )


def _cpu(mine: Result, theirs: Result) -> str:
    if mine.cpu_ms is None or theirs.cpu_ms is None:
        return ""
    return (
        f"; cpu {mine.cpu_ms:.3f} vs {theirs.cpu_ms:.3f} ms/req -> "
        f"{mine.cpu_ms / theirs.cpu_ms:.2f}x"
    )


def login_script(folder: Path, path: str) -> Path:
    script = folder / f"login{path.replace('/', '-')}.lua"
    body = f"username={EMAIL.replace('@', '%40')}&password={PASSWORD}"
    script.write_text(
        f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )
    return script


def storm(base: str, folder: Path, seconds: int, storm_connections: int) -> tuple[Result, Result]:
    """/health/live alone, then while a login storm runs next to it."""
    idle = wrk(f"{base}/health/live", seconds, 1, {})
    script = login_script(folder, "/api/v1/auth/token")
    logins = subprocess.Popen(  # noqa: S603 - wrk with our own arguments
        [wrk_path(), "-t1", f"-c{storm_connections}", f"-d{seconds + 2}s", "-s", str(script), base],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        during = wrk(f"{base}/health/live", seconds, 1, {})
    finally:
        logins.wait()
    return idle, during


def cold_starts(env: dict[str, str], bare_env: dict[str, str], log: Path, n: int) -> None:
    project, bare = [], []
    # The server's CPU time up to its first 200 (Linux): what the start-up costs,
    # whatever else the machine runs meanwhile.
    project_cpu: list[float] = []
    bare_cpu: list[float] = []
    for _ in range(n):
        with running(PROJECT, env, "/health/live", log) as server:
            project.append(server.started_in)
            _add_cpu(project_cpu, server)
        with running(BARE, bare_env, "/ping", log) as server:
            bare.append(server.started_in)
            _add_cpu(bare_cpu, server)
    p, b = statistics.median(project), statistics.median(bare)
    cpu = ""
    if project_cpu and bare_cpu:
        pc, bc = statistics.median(project_cpu), statistics.median(bare_cpu)
        cpu = f"; cpu {pc:.2f} vs {bc:.2f} s -> {pc / bc:.2f}"
    print(
        f"  cold start (process start to first 200, median of {n}): project {p:.2f} s, "
        f"bare {b:.2f} s -> ratio {p / b:.2f}{cpu}  "
        f"(project runs {min(project):.2f}-{max(project):.2f} s; target <= 1.5 s)",
        flush=True,
    )


def _add_cpu(seconds: list[float], server: Server) -> None:
    used = server.cpu_seconds()
    if used is not None:
        seconds.append(used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--storm-connections", type=int, default=8)
    parser.add_argument("--deep-items", type=int, default=200_000)
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/groundwork_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--project-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the project's server, to measure a candidate (repeatable)",
    )
    parser.add_argument("--items-only", action="store_true", help="the items list alone")
    parser.add_argument(
        "--items-and-health", action="store_true", help="the items list and /health/live alone"
    )
    parser.add_argument(
        "--cold-starts-only", action="store_true", help="the cold starts alone (no wrk needed)"
    )
    args = parser.parse_args()
    if not args.cold_starts_only:
        wrk_path()
    args.secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory() as directory, dummy_collector() as collector:
        folder = Path(directory)
        metrics_dir = folder / "metrics"
        metrics_dir.mkdir()
        env = project_env(args, collector, metrics_dir)
        env.update(setting.split("=", 1) for setting in args.project_env)
        bare_env = {"BARE_DATABASE_URL": args.database_url, "BARE_SECRET_KEY": args.secret}
        asyncio.run(create_database(args.database_url))
        migrate(Settings(_env_file=None, database_url=args.database_url))  # type: ignore[call-arg]
        log = folder / "servers.log"
        if args.cold_starts_only:
            cold_starts(env, bare_env, log, args.cold_starts)
            return
        c, s = args.connections, args.seconds
        print(f"wrk -t1 -c{c}, {s:g} s per run, {args.rounds} alternating rounds", flush=True)
        with running(PROJECT, env, "/health/live", log) as mine:
            asyncio.run(prepare(args, env, mine.base))
            with running(BARE, bare_env, "/ping", log) as bare:
                token = asyncio.run(login(mine.base, "/api/v1/auth/token"))
                auth = {"Authorization": f"Bearer {token}"}
                q = f"?limit={PAGE_SIZE}"
                print("GET items, authenticated", flush=True)
                items = alternate(
                    args.rounds,
                    {
                        "project": (f"{mine.base}/api/v1/items{q}", auth, None, mine),
                        "bare": (f"{bare.base}/items{q}", auth, None, bare),
                    },
                    s,
                    c,
                )
                if args.items_only:
                    report("items list", items, ">= 0.8 req/s, p99 <= 1.5x")
                    return
                print("health", flush=True)
                health = alternate(
                    args.rounds,
                    {
                        "project": (f"{mine.base}/health/live", {}, None, mine),
                        "bare": (f"{bare.base}/ping", {}, None, bare),
                    },
                    s,
                    c,
                )
                if args.items_and_health:
                    report("items list", items, ">= 0.8 req/s, p99 <= 1.5x")
                    report("/health/live vs /ping", health, ">= 0.6 req/s")
                    return
                print("login", flush=True)
                logins = alternate(
                    args.rounds,
                    {
                        "project": (
                            mine.base,
                            {},
                            login_script(folder, "/api/v1/auth/token"),
                            mine,
                        ),
                        "bare": (bare.base, {}, login_script(folder, "/token"), bare),
                    },
                    s,
                    args.storm_connections,
                )
            print("health during a login storm (project)", flush=True)
            idle, during = storm(mine.base, folder, s, args.storm_connections)
            print("deep page (project)", flush=True)
            token = asyncio.run(login(mine.base, "/api/v1/auth/token"))
            auth = {"Authorization": f"Bearer {token}"}
            cursor = asyncio.run(deep_cursor(mine.base, token))
            pages = alternate(
                args.rounds,
                {
                    "deep": (f"{mine.base}/api/v1/items{q}&cursor={cursor}", auth, None, mine),
                    "first": (f"{mine.base}/api/v1/items{q}", auth, None, mine),
                },
                s,
                c,
            )
        print("cold start", flush=True)
        print()
        print("Ratios (medians of the rounds; project / bare unless said):")
        report("items list", items, ">= 0.8 req/s, p99 <= 1.5x")
        report("/health/live vs /ping", health, ">= 0.6 req/s")
        report("login", logins, "as close to 1 as argon2id allows")
        print(
            f"  /health/live p99 during a login storm: {during.p99_ms:.2f} ms vs idle "
            f"{idle.p99_ms:.2f} ms -> {during.p99_ms / idle.p99_ms:.2f}x  (target <= 5x)"
        )
        report(f"deep page {DEEP_PAGE} vs first page", pages, "deep p50 <= 1.3x first")
        cold_starts(env, bare_env, log, args.cold_starts)


if __name__ == "__main__":
    main()
