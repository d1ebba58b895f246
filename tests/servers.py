"""A real `python -m app serve` for the tests that need one: started, waited for, stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

# Bounds on waiting for the server, so a hang fails instead of stalling the run.
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30


@contextmanager
def serving(
    env: Mapping[str, str],
    *,
    cwd: Path,
    stdout: IO[str] | int = subprocess.DEVNULL,
    stderr: IO[str] | int = subprocess.DEVNULL,
    log: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Serve on `env`'s HOST and PORT until readiness answers 200; SIGTERM it afterwards.

    Yields the base URL and the process. The server's settings come from
    `env` alone; `log` is shown when it does not start.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=cwd,
        env=dict(env),
        stdout=stdout,
        stderr=stderr,
        text=True,
    )
    base = f"http://{env['HOST']}:{env['PORT']}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                said = log.read_text() if log is not None else process.communicate(timeout=5)
                pytest.fail(f"the server did not start: {said}")
            time.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
