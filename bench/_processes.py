"""Starting the servers a benchmark measures: a free port, the process, its CPU time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60
# callgrind's simulated last level: one core's own L2 (size, ways, line) on
# the bench's machines, AMD EPYC. Past it a read goes to a cache shared
# with every other process.
LAST_LEVEL = "1048576,16,64"


def uvicorn_command(factory: str, *options: str) -> list[str]:
    """`factory` served by uvicorn on 127.0.0.1 and the `{port}` `running` fills in,
    without uvicorn's access log or Server header."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        "--no-server-header",
        *options,
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    base: str
    started_in: float
    pid: int

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used so far (Linux only)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running(
    command: list[str],
    env: dict[str, str],
    probe: str,
    log: Path,
    *,
    start_timeout: float = START_TIMEOUT_SECONDS,
) -> Iterator[Server]:
    """A server process, from start to its first 200 on `probe`, stopped on leaving."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("a") as out:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [part.replace("{port}", str(port)) for part in command],
            cwd=ROOT,
            env={"PATH": os.environ.get("PATH", ""), **env, "PORT": str(port)},
            stdout=out,
            stderr=out,
        )
        try:
            with httpx.Client(base_url=base, timeout=2) as http:
                while True:
                    try:
                        if http.get(probe).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if process.poll() is not None or time.perf_counter() - started > start_timeout:
                        raise SystemExit(f"{command} did not start; see {log}")
                    time.sleep(0.01)
            yield Server(base, time.perf_counter() - started, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
