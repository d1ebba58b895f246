"""Several worker processes: /metrics adds up what every worker counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from tests.conftest import free_port
from tests.helpers import app_environment
from tests.servers import START_TIMEOUT_SECONDS, STOP_TIMEOUT_SECONDS, serving

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 120


@pytest.fixture
def two_workers(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    # A leftover from an earlier run must not be counted.
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")
    env = {
        **app_environment(settings),
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with serving(env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as (base, process):
        yield base, metrics_dir, process


def counted(text: str, route: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("route") == route:
                total += sample.value
    return total


def worker_files(metrics_dir: Path, kind: str) -> set[str]:
    return {path.name for path in metrics_dir.glob(f"{kind}_*.db")}


def test_counts_from_every_worker_are_summed(
    two_workers: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, metrics_dir, process = two_workers

    def hit(_: int) -> int:
        # A connection per request, so the kernel spreads them over both workers.
        return httpx.get(f"{base}/health/live", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(hit, range(REQUESTS)))

    assert statuses == [200] * REQUESTS
    # A worker counts a request just after its last byte is sent, so the
    # scrape may come a moment early; it is repeated, within a bound.
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while (
        total := counted(httpx.get(f"{base}/metrics", timeout=10).text, "/health/live")
    ) < REQUESTS:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert total == REQUESTS
    # Both workers wrote counts of their own, and the stale file is gone.
    assert len(worker_files(metrics_dir, "counter")) == 2
    assert "counter_1.db" not in worker_files(metrics_dir, "counter")
    live_gauges = worker_files(metrics_dir, "gauge_livesum")
    assert live_gauges

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=STOP_TIMEOUT_SECONDS)

    # Workers that exit are marked dead: their live gauges no longer count.
    assert worker_files(metrics_dir, "gauge_livesum") == set()
    # Every line of the server's output, uvicorn's own included, is JSON.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]
    assert any(record.get("logger", "").startswith("uvicorn") for record in records)
