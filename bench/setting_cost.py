"""What a setting costs a running server: the project twice, side by side, one with the setting.

Both servers start as `bench/compare.py` starts the project (production
settings, JSON access log, multiprocess metrics, traces sampled at 0.1,
limits counted in Redis, PostgreSQL); the second also gets each
`--setting`. `wrk` drives the authenticated items list (or `--path`) at
both in alternating rounds, and the script prints every round, then the
medians as with the setting / without, CPU per request included: on a
shared machine two servers of the same code differ by a few per cent from
run to run, so a cost that small needs more rounds than the default.

    .venv/bin/python bench/setting_cost.py --setting RATE_LIMIT_ENABLED=false
    .venv/bin/python bench/setting_cost.py --setting OTEL_TRACES_SAMPLER_ARG=0 --rounds 6
    .venv/bin/python bench/setting_cost.py --setting OTEL_TRACES_SAMPLER_ARG=1 \
        --both OTEL_TRACES_SAMPLER_ARG=0

It needs the database and the bench user that `make bench` prepares.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._processes import running  # noqa: E402
from bench.compare import (  # noqa: E402
    PAGE_SIZE,
    PROJECT,
    alternate,
    login,
    project_env,
    report,
    wrk_path,
)
from bench.observability import dummy_collector  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--setting", action="append", required=True, metavar="NAME=VALUE", help="repeatable"
    )
    parser.add_argument(
        "--both", action="append", default=[], metavar="NAME=VALUE", help="a setting of both"
    )
    parser.add_argument("--path", default=f"/api/v1/items?limit={PAGE_SIZE}")
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/groundwork_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    wrk_path()
    args.secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory() as directory, dummy_collector() as collector:
        folder = Path(directory)
        envs = {}
        for name in ("with", "without"):
            # Each server clears its metrics directory as it starts.
            metrics_dir = folder / f"metrics-{name}"
            metrics_dir.mkdir()
            envs[name] = project_env(args, collector, metrics_dir)
            envs[name].update(setting.split("=", 1) for setting in args.both)
        envs["with"].update(setting.split("=", 1) for setting in args.setting)
        log = folder / "servers.log"
        print(
            f"wrk -t1 -c{args.connections}, {args.seconds} s per run, {args.rounds} alternating"
            f" rounds; with {' '.join(args.setting)}",
            flush=True,
        )
        with (
            running(PROJECT, envs["with"], "/health/live", log) as changed,
            running(PROJECT, envs["without"], "/health/live", log) as plain,
        ):
            token = asyncio.run(login(plain.base, "/api/v1/auth/token"))
            auth = {"Authorization": f"Bearer {token}"}
            results = alternate(
                args.rounds,
                {
                    "with": (f"{changed.base}{args.path}", auth, None, changed),
                    "without": (f"{plain.base}{args.path}", auth, None, plain),
                },
                args.seconds,
                args.connections,
            )
        report(f"{args.path}, with / without", results, "none, a measurement")


if __name__ == "__main__":
    main()
