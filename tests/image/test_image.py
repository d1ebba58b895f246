"""The image on its own: run as `docker run` would, against a PostgreSQL container."""

from __future__ import annotations

import http.client
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.image.conftest import (
    IMAGE,
    LABEL,
    PREFIX,
    ROOT,
    build,
    inspect,
    new_secret,
    ok,
    podman_run,
    remove_labelled,
    run,
    wait_until,
)

pytestmark = pytest.mark.image

NETWORK = f"{PREFIX}-net"
POSTGRES = f"{PREFIX}-postgres"
API = f"{PREFIX}-api"
DATABASE_URL = f"postgresql+asyncpg://groundwork:groundwork@{POSTGRES}:5432/groundwork"
READY_WITHIN_SECONDS = 90
# uvicorn's own keep-alive is 5 s; a connection idle longer must still be served.
IDLE_SECONDS = 6.5
# What a user gives the container as writable: /tmp (each worker's metrics
# files), nothing else. podman alone would add tmpfs mounts Docker does not.
WRITABLE = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp:rw,size=64m,mode=1777",  # noqa: S108 (inside the container)
)


@dataclass(frozen=True)
class Served:
    port: int
    secret: str

    def options(self) -> list[str]:
        return [
            *WRITABLE,
            "--network",
            NETWORK,
            "-e",
            f"SECRET_KEY={self.secret}",
            "-e",
            f"DATABASE_URL={DATABASE_URL}",
        ]


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def answers_ready(port: int) -> bool:
    try:
        status, _ = get(port, "/health/ready")
    except OSError:
        return False
    return status == 200


@pytest.fixture(scope="module")
def database(image: str) -> Iterator[None]:
    remove_labelled()
    ok(run("podman", "network", "create", "--label", f"{LABEL}=1", NETWORK))
    ok(
        run(
            "podman",
            "run",
            "-d",
            "--name",
            POSTGRES,
            "--label",
            f"{LABEL}=1",
            "--network",
            NETWORK,
            "-e",
            "POSTGRES_USER=groundwork",
            "-e",
            "POSTGRES_PASSWORD=groundwork",
            "-e",
            "POSTGRES_DB=groundwork",
            "docker.io/library/postgres:17-alpine",
        )
    )
    wait_until(
        "PostgreSQL accepts connections",
        60,
        lambda: (
            run(
                "podman", "exec", POSTGRES, "pg_isready", "-h", "127.0.0.1", "-U", "groundwork"
            ).returncode
            == 0
        ),
    )
    yield
    run("podman", "rm", "-f", "-t", "0", POSTGRES)
    run("podman", "network", "rm", "-f", NETWORK)


@pytest.fixture(scope="module")
def served(image: str, database: None) -> Iterator[Served]:
    """`migrate` once, then the server, both on a read-only root filesystem, as non-root."""
    served = Served(port=free_port(), secret=new_secret())
    ok(podman_run(image, "python", "-m", "app", "migrate", options=served.options()))
    ok(
        run(
            "podman",
            "run",
            "-d",
            "--name",
            API,
            "--label",
            f"{LABEL}=1",
            *served.options(),
            "-p",
            f"127.0.0.1:{served.port}:8000",
            "-e",
            "PROMETHEUS_MULTIPROC_DIR=/tmp/groundwork-metrics",
            image,
        )
    )
    try:
        wait_until(
            "/health/ready answers 200", READY_WITHIN_SECONDS, lambda: answers_ready(served.port)
        )
        yield served
    finally:
        logs = run("podman", "logs", API)
        run("podman", "rm", "-f", "-t", "0", API)
        print(logs.stdout[-4000:], logs.stderr[-4000:])


def test_the_image_runs_as_uid_10001(image: str) -> None:
    assert inspect(image)["Config"]["User"] == "10001:10001"
    assert ok(podman_run(image, "id", "-u")).strip() == "10001"


def test_a_production_start_refuses_the_default_secret_key(image: str) -> None:
    result = podman_run(image)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stdout + result.stderr


def test_the_server_is_ready_against_postgresql_on_a_read_only_root(served: Served) -> None:
    status, body = get(served.port, "/health/ready")

    assert status == 200, body
    # The server itself cannot write outside the tmpfs: its root is read-only.
    denied = run("podman", "exec", API, "touch", "/app/written")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr


def test_the_images_healthcheck_passes_on_a_serving_container(served: Served) -> None:
    assert inspect(API)["Config"]["Healthcheck"]["Test"][0] == "CMD"
    ok(run("podman", "healthcheck", "run", API))


def test_the_server_answers_on_ipv4_and_ipv6(served: Served) -> None:
    for host in ("127.0.0.1", "[::1]"):
        script = (
            "import urllib.request; "
            f"print(urllib.request.urlopen('http://{host}:8000/health/live', timeout=5).status)"
        )
        assert ok(run("podman", "exec", API, "python", "-c", script)).strip() == "200", host


def test_an_idle_keep_alive_connection_is_still_served(served: Served) -> None:
    # A load balancer reuses a connection after its own idle time (60 s on an
    # AWS ALB); uvicorn's default of 5 s closed it under the balancer's feet.
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        connection.request("GET", "/health/live")
        first = connection.getresponse()
        first.read()
        assert first.status == 200
        assert connection.sock is not None
        local = connection.sock.getsockname()

        time.sleep(IDLE_SECONDS)
        connection.request("GET", "/health/live")
        second = connection.getresponse()
        second.read()

        assert second.status == 200
        assert connection.sock is not None
        assert connection.sock.getsockname() == local, "the connection was opened again"
    finally:
        connection.close()


def test_the_cli_works_inside_the_image(image: str, served: Served) -> None:
    created = podman_run(
        image,
        "groundwork",
        "create-admin",
        "admin@example.com",
        "--password-stdin",
        options=served.options(),
        input="correct horse battery staple 42\n",
    )
    assert ok(created).strip() == "created"

    listed = ok(podman_run(image, "python", "-m", "app", "list-users", options=served.options()))
    assert "admin@example.com" in listed
    assert "admin" in listed.split("admin@example.com", 1)[1]


def test_sigterm_stops_a_one_off_command_at_once(image: str) -> None:
    # A command that installs no signal handler, as `migrate` or the CLI: as
    # PID 1 it would ignore SIGTERM and be killed when the grace period ends.
    name = f"{PREFIX}-sleeper"
    ok(
        run(
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"{LABEL}=1",
            image,
            "python",
            "-c",
            "import time; print('up', flush=True); time.sleep(300)",
        )
    )
    try:
        wait_until("the command runs", 30, lambda: "up" in run("podman", "logs", name).stdout)
        ok(run("podman", "stop", "-t", "60", name, timeout=90))
        state = inspect(name)["State"]
    finally:
        run("podman", "rm", "-f", "-t", "0", name)

    # 143: ended by the SIGTERM itself; 137 would be the SIGKILL after the grace period.
    assert state["ExitCode"] == 143, state


def test_the_app_is_byte_compiled(image: str) -> None:
    script = (
        "import importlib.util, pathlib\n"
        "for top in ('app', 'migrations'):\n"
        "    for source in pathlib.Path('/app', top).rglob('*.py'):\n"
        "        if not pathlib.Path(importlib.util.cache_from_source(str(source))).is_file():\n"
        "            print(source)\n"
    )
    missing = ok(podman_run(image, "python", "-c", script))

    assert missing == "", f"not byte-compiled:\n{missing}"


def layers(image: str) -> list[tuple[str, int, str]]:
    """(diff id, size in bytes, instruction) of each layer, bottom first."""
    details = inspect(image)
    every = details["History"]
    # `podman history` lists the same steps, newest first, with their sizes.
    sizes = [
        entry["size"]
        for entry in reversed(json.loads(ok(run("podman", "history", "--format", "json", image))))
    ]
    assert len(sizes) == len(every), (len(sizes), len(every))
    sized = [
        (size, entry.get("created_by", ""))
        for entry, size in zip(every, sizes, strict=True)
        if not entry.get("empty_layer")
    ]
    diff_ids: list[str] = details["RootFS"]["Layers"]
    assert len(diff_ids) == len(sized)
    return [(diff, size, step) for diff, (size, step) in zip(diff_ids, sized, strict=True)]


def test_a_change_to_code_or_readme_ships_only_small_layers(image: str, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md", "alembic.ini", ".dockerignore"):
        shutil.copy2(ROOT / name, context / name)
    for name in ("app", "migrations", "docker"):
        shutil.copytree(ROOT / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
    for changed_file in (context / "app" / "main.py", context / "README.md"):
        changed_file.write_text(changed_file.read_text() + "\n# one line changed\n")
    changed = f"{IMAGE}-changed"

    build(context, changed)
    try:
        before = {diff for diff, _, _ in layers(IMAGE)}
        after = layers(changed)
    finally:
        run("podman", "rmi", "-f", changed)

    shipped = [(size, step) for diff, size, step in after if diff not in before]
    assert shipped, "the changed code is in no new layer"
    assert sum(size for size, _ in shipped) < 5_000_000, shipped
    venv = max(after, key=lambda layer: layer[1])
    assert venv[0] in before, f"the largest layer was rebuilt: {venv[2]}"
