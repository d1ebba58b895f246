"""What one request costs a running server, in instructions of all its threads, by callgrind.

`bench/instructions.py` counts the app's own thread in one process, without
a server: steady, but blind to what serving adds — uvicorn's parsing and
writing, and the threads beside the event loop (the span exporter's
encoding and posting of the sampled spans). This script starts the server
as `bench/compare.py` does (`python -m app serve` with production settings,
or the bare app under uvicorn) under callgrind, sends it requests over
HTTP from `--connections` keep-alive connections, and counts every
instruction any of its threads runs while they are answered:

    .venv/bin/python bench/served.py /health/live
    .venv/bin/python bench/served.py /ping --bare
    .venv/bin/python bench/served.py "/api/v1/items?limit=20" --login --requests 500
    .venv/bin/python bench/served.py "/items?limit=20" --login --requests 500 --bare

`--cache-sim` also counts misses of a last level the size of one core's own
L2 (as `bench/instructions.py --cache-sim` does).

It needs valgrind and the database `bench/compare.py` prepares. Counting
starts after a warm-up long enough for the exporter's first batch (its
first export imports the OTLP client), so what is counted is the steady
state. A run takes a minute or two: the server runs some fifty times slower.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._processes import LAST_LEVEL, running  # noqa: E402
from bench.compare import BARE, EMAIL, PASSWORD, PROJECT, project_env, request_parser  # noqa: E402
from bench.observability import dummy_collector  # noqa: E402

WARM_UP = 300
# The exporter sends its first batch this long after the first span (OTel's default delay).
EXPORT_DELAY_SECONDS = 6
START_TIMEOUT_SECONDS = 600


async def send(base: str, path: str, count: int, headers: dict[str, str], connections: int) -> None:
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        left = count

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                response = await http.get(path, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"GET {path}: {response.status_code} {response.text}")

        await asyncio.gather(*(client() for _ in range(connections)))


async def bearer(base: str, path: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        response = await http.post(path, data={"username": EMAIL, "password": PASSWORD})
    if response.status_code != 200:
        raise SystemExit(f"login failed ({response.status_code}): run `make bench` once")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def callgrind_control(pid: int, env: dict[str, str], *options: str) -> None:
    # vgdb finds the server by a name that includes HOST, as the server saw it.
    control = [shutil.which("callgrind_control") or "callgrind_control", *options, str(pid)]
    host = {"HOST": env["HOST"]} if "HOST" in env else {}
    subprocess.run(control, check=True, capture_output=True, env={**os.environ, **host})  # noqa: S603


def thread_totals(folder: Path) -> list[tuple[int, int]]:
    """Each thread's instructions and last-level misses while counting was on (misses: 0
    without `--cache-sim`), from callgrind's dumps."""
    totals = []
    for dump in sorted(folder.glob("callgrind.out.*")):
        events: list[str] = []
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:"):
                counts = dict(zip(events, map(int, line.split()[1:]), strict=False))
                misses = sum(counts.get(event, 0) for event in ("ILmr", "DLmr", "DLmw"))
                totals.append((counts.get("Ir", 0), misses))
    return [total for total in totals if total[0]]


def main() -> None:
    parser = request_parser(__doc__.splitlines()[0], requests=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--cache-sim", action="store_true", help="also misses of a 1 MiB last level"
    )
    args = parser.parse_args()
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed: `sudo apt-get install valgrind`")
    args.secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory() as directory, dummy_collector() as collector:
        folder = Path(directory)
        metrics_dir = folder / "metrics"
        metrics_dir.mkdir()
        if args.bare:
            command, probe = BARE, "/ping"
            env = {"BARE_DATABASE_URL": args.database_url, "BARE_SECRET_KEY": args.secret}
        else:
            command, probe = PROJECT, "/health/live"
            env = project_env(args, collector, metrics_dir)
        env.update(setting.split("=", 1) for setting in args.setting)
        counted = [
            valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            *(["--cache-sim=yes", f"--LL={LAST_LEVEL}"] if args.cache_sim else []),
            f"--callgrind-out-file={folder / 'callgrind.out'}",
            *command,
        ]
        log = folder / "server.log"
        with running(counted, env, probe, log, start_timeout=START_TIMEOUT_SECONDS) as server:
            login = "/token" if args.bare else "/api/v1/auth/token"
            headers = asyncio.run(bearer(server.base, login)) if args.login else {}
            asyncio.run(send(server.base, args.path, WARM_UP, headers, args.connections))
            time.sleep(EXPORT_DELAY_SECONDS)
            callgrind_control(server.pid, env, "-i", "on")
            asyncio.run(send(server.base, args.path, args.requests, headers, args.connections))
            callgrind_control(server.pid, env, "-i", "off")
            callgrind_control(server.pid, env, "-d")
        totals = thread_totals(folder)
    what = "bare " if args.bare else ""
    per_request = [(done // args.requests, missed // args.requests) for done, missed in totals]
    line = f"{what}GET {args.path}: {sum(done for done, _ in per_request):,} instructions"
    if args.cache_sim:
        line += f" and {sum(missed for _, missed in per_request):,} misses of a 1 MiB last level"
        threads = ", ".join(f"{done:,} and {missed:,}" for done, missed in per_request)
    else:
        threads = ", ".join(f"{done:,}" for done, _ in per_request)
    print(f"{line} per request (threads: {threads})")


if __name__ == "__main__":
    main()
