"""What one request costs in CPU instructions, counted by callgrind: steady on a noisy machine.

Wall-clock and CPU time per request move by a fifth between two runs of the
same code on a shared two-core machine; an instruction count does not. This
script builds the app in this process with the settings `bench/compare.py`
serves it with (production, JSON access log, multiprocess metrics, traces
sampled at 0.1, the default limit counted in Redis, PostgreSQL), logs in as
the bench user, then sends `--requests` requests straight to its ASGI
interface, without a server or a socket of its own. Under callgrind only
those requests are counted, and only the thread that serves them: the span
exporter's thread wakes on its own schedule.

    .venv/bin/python bench/instructions.py /health/live
    .venv/bin/python bench/instructions.py "/api/v1/items?limit=20" --login --requests 200
    .venv/bin/python bench/instructions.py /ping --bare    # bench/bare.py
    .venv/bin/python bench/instructions.py /health/live --setting LOG_LEVEL=WARNING

With `--cache-sim` callgrind also simulates the caches and prints how many
of each request's code and data reads miss a last level of 1 MiB, the size
of one core's own L2 on the machines the bench ran on. Past that a read
goes to a cache shared with every other process (and, on a rented host,
every other tenant): a request whose code and data no longer fit its
core's cache pays for it in time that no instruction count shows.

It needs valgrind (`apt-get install valgrind`) and the database that
`bench/compare.py` prepares (run `make bench` once). Without `--callgrind`
it runs the same requests and prints microseconds per request instead (the
app's log lines go to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# prometheus_client settles on multiprocess mode or not when it is first
# imported (by the app's modules, through bench.compare), from
# PROMETHEUS_MULTIPROC_DIR: the server has it in its environment from the
# start, and so must this process, or its metrics are counted in memory.
METRICS_DIR = tempfile.mkdtemp(prefix="groundwork-bench-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR

from bench._processes import LAST_LEVEL  # noqa: E402
from bench.compare import EMAIL, PASSWORD, project_env, request_parser  # noqa: E402

WARM_UP = 300
Message = dict[str, Any]


def settings_env(args: argparse.Namespace, metrics_dir: str) -> dict[str, str]:
    env = project_env(args, "http://127.0.0.1:9", Path(metrics_dir))
    # Nothing is exported while measuring: spans still start, end and queue.
    env["OTEL_BSP_SCHEDULE_DELAY"] = "3600000"
    env["TRUSTED_HOSTS"] = "*"
    # Nothing listens here; and valgrind's control tool reads HOST as the machine's name.
    del env["HOST"]
    env.update(setting.split("=", 1) for setting in args.setting)
    return env


def http_scope(method: str, target: str, headers: list[tuple[bytes, bytes]]) -> Message:
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: Any, scope: Message, body: bytes = b"") -> tuple[int, bytes]:
    answer: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        answer.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in answer if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in answer if m["type"] == "http.response.body")


async def login(app: Any, path: str) -> str:
    form = f"username={EMAIL.replace('@', '%40')}&password={PASSWORD}".encode()
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(form)).encode()),
    ]
    status, body = await call(app, http_scope("POST", path, headers), form)
    if status != 200:
        raise SystemExit(f"login failed ({status}): run `make bench` once to create the bench user")
    token: str = json.loads(body)["access_token"]
    return token


async def measure(args: argparse.Namespace) -> None:
    if args.bare:
        os.environ["BARE_DATABASE_URL"] = os.environ["DATABASE_URL"]
        os.environ["BARE_SECRET_KEY"] = os.environ["SECRET_KEY"]
        from bench.bare import create_app
    else:
        from app.main import create_app  # type: ignore[assignment]
    app = create_app()
    lifespan: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message: Message) -> None:
        if message["type"] == "lifespan.startup.failed":
            raise SystemExit(message.get("message", "start-up failed"))
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await lifespan.put({"type": "lifespan.startup"})
    running = asyncio.create_task(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            lifespan.get,
            lifespan_send,
        )
    )
    await started.wait()
    headers = []
    if args.login:
        token = await login(app, "/token" if args.bare else "/api/v1/auth/token")
        headers.append((b"authorization", f"Bearer {token}".encode()))
    for _ in range(WARM_UP):
        status, _ = await call(app, http_scope("GET", args.path, headers))
        if status != 200:
            raise SystemExit(f"GET {args.path}: {status}")
    # As the server does once started (app/core/workers.py).
    gc.collect()
    gc.freeze()
    if args.callgrind:
        # Blocking on purpose: nothing else may run while counting starts or stops.
        control = [shutil.which("callgrind_control") or "callgrind_control", "-i", "on"]
        control.append(str(os.getpid()))
        subprocess.run(control, check=True, capture_output=True)  # noqa: S603, ASYNC221
    started_at = time.perf_counter()
    for _ in range(args.requests):
        await call(app, http_scope("GET", args.path, headers))
    elapsed = time.perf_counter() - started_at
    if args.callgrind:
        control[2] = "off"
        subprocess.run(control, check=True, capture_output=True)  # noqa: S603, ASYNC221
    else:
        print(f"{1e6 * elapsed / args.requests:.1f} µs per request")
    await lifespan.put({"type": "lifespan.shutdown"})
    await running


def under_callgrind(args: argparse.Namespace) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed: `sudo apt-get install valgrind`")
    caches = ["--cache-sim=yes", f"--LL={LAST_LEVEL}"] if args.cache_sim else []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            *caches,
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--inside-callgrind",
            *sys.argv[1:],
        ]
        subprocess.run(command, check=True, capture_output=True)  # noqa: S603
        # Thread 1 serves the requests; the others export spans or count in SQLite.
        annotated = subprocess.run(  # noqa: S603
            [shutil.which("callgrind_annotate") or "callgrind_annotate", f"{out}-01"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    events = next(line for line in annotated.splitlines() if line.startswith("Events shown:"))
    totals = next(line for line in annotated.splitlines() if "PROGRAM TOTALS" in line)
    # "1,234 (100.0%) 56 (100.0%) ... PROGRAM TOTALS": one count per event shown.
    numbers = (int(number.replace(",", "")) for number in totals.split()[::2])
    counts = dict(zip(events.split()[2:], numbers, strict=False))
    what = "bare " if args.bare else ""
    line = f"{what}GET {args.path}: {counts['Ir'] // args.requests:,} instructions per request"
    if args.cache_sim:
        code, data = counts["ILmr"], counts["DLmr"] + counts["DLmw"]
        line += (
            f"; {(code + data) // args.requests:,} misses of a 1 MiB last level"
            f" ({code // args.requests:,} code, {data // args.requests:,} data)"
        )
    print(line)


def main() -> None:
    parser = request_parser(__doc__.splitlines()[0], requests=300)
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind)")
    parser.add_argument(
        "--cache-sim", action="store_true", help="with --callgrind: misses of a 1 MiB last level"
    )
    parser.add_argument("--inside-callgrind", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.secret = secrets.token_urlsafe(48)
    try:
        if not args.callgrind or args.inside_callgrind:
            os.environ.update(settings_env(args, METRICS_DIR))
            asyncio.run(measure(args))
        else:
            under_callgrind(args)
    finally:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
