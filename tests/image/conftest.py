"""The image and the compose stack, built and run with podman as a user would.

`make image-test` (tests/image/run.sh) prepares the engine; these tests build
and run. With no registry reachable, the images the Dockerfile and
docker-compose.yml name are local stand-ins made by container-standins.sh.
What differs from a user's machine:

- python:3.13-slim-bookworm is Debian bookworm's python3: Python 3.11.2 in
  /usr/bin (the real image: 3.13 in /usr/local/bin), 270 MB instead of about
  130, plus the host's CA bundle. It is named through the Dockerfile's
  PYTHON_IMAGE argument, as the stand-in has no digest.
- postgres:17-alpine is PostgreSQL 15 on Debian (glibc); its entrypoint
  honours only POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB, not the
  POSTGRES_PASSWORD_FILE docker-compose.yml gives, so test_compose.py adds
  POSTGRES_PASSWORD in a second compose file.
- redis:7-alpine is Redis 7.0.15 on Debian (glibc).
- The engine is podman 4.3 behind its Docker-compatible API, not Docker
  Engine: builds go through buildah (the classic builder, no BuildKit), and
  HEALTHCHECKs are run by a loop of the script's every 3 s, not by a daemon
  on each check's interval.
- Mailpit, Prometheus, Grafana and Jaeger have no stand-ins: their profiles
  are checked with `docker compose config` only, never run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
LABEL = "groundwork.image-test"
PREFIX = "groundwork-image-test"
IMAGE = f"localhost/{PREFIX}:latest"
STANDIN_BUILD_ARGS = (
    "--build-arg",
    "PYTHON_IMAGE=docker.io/library/python:3.13-slim-bookworm",
)
BUILD_TIMEOUT_SECONDS = 1200
COMMAND_TIMEOUT_SECONDS = 120


def unavailable(reason: str) -> None:
    """Under CI an engine that could not be made is a failure, never a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run(
    *args: str,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
    env: dict[str, str] | None = None,
    input: str | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def inspect(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(ok(run("podman", "inspect", name)))
    return found[0]


def remove_labelled() -> None:
    names = run("podman", "ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
    if names:
        run("podman", "rm", "-f", "-t", "0", *names)
    networks = run("podman", "network", "ls", "-q", "--filter", f"label={LABEL}").stdout.split()
    if networks:
        run("podman", "network", "rm", "-f", *networks)


@dataclass(frozen=True)
class Engine:
    work: Path
    docker_host: str
    compose: str

    def report(self, config: pytest.Config, line: str) -> None:
        """A measurement, printed as it is made, past pytest's capture."""
        capture = config.pluginmanager.get_plugin("capturemanager")
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if capture is None or reporter is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"image-test: {line}")


@pytest.fixture(scope="session")
def engine() -> Engine:
    work = os.environ.get("IMAGE_TEST_WORK")
    if not work:
        unavailable("IMAGE_TEST_WORK is unset: run `make image-test`, which makes the engine")
    assert work is not None
    socket = Path(work) / "podman.sock"
    compose = Path(work) / "venv" / "bin" / "docker-compose"
    if shutil.which("podman") is None:
        unavailable("podman is not installed")
    if not socket.is_socket():
        unavailable(f"podman's API service is not listening on {socket}")
    if not compose.is_file():
        unavailable(f"Docker Compose v2 is missing at {compose}")
    return Engine(work=Path(work), docker_host=f"unix://{socket}", compose=str(compose))


def build(context: Path, tag: str) -> float:
    """Build the Dockerfile as `podman build` would for a user; return the seconds it took."""
    started = time.monotonic()
    # Docker's format: the default OCI format has no HEALTHCHECK.
    ok(
        run(
            "nice",
            "-n",
            "5",
            "podman",
            "build",
            "--format",
            "docker",
            *STANDIN_BUILD_ARGS,
            "--label",
            f"{LABEL}=1",
            "-f",
            "docker/Dockerfile",
            "-t",
            tag,
            ".",
            timeout=BUILD_TIMEOUT_SECONDS,
            cwd=context,
        )
    )
    return time.monotonic() - started


@pytest.fixture(scope="session")
def image(engine: Engine, pytestconfig: pytest.Config) -> Iterator[str]:
    took = build(ROOT, IMAGE)
    engine.report(pytestconfig, f"image built in {took:.0f} s")
    yield IMAGE
    remove_labelled()


def podman_run(
    image: str, *command: str, options: Sequence[str] = (), input: str | None = None
) -> subprocess.CompletedProcess[str]:
    flags = ["-i"] if input is not None else []
    return run(
        "podman",
        "run",
        "--rm",
        *flags,
        "--label",
        f"{LABEL}=1",
        *options,
        image,
        *command,
        input=input,
    )


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def wait_until(check: str, seconds: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(1)
    pytest.fail(f"{check}: not within {seconds:.0f} s")
