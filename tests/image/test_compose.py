"""`docker compose up` with Docker Compose v2, as a user would, against podman's API service."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port
from tests.image.conftest import (
    COMMAND_TIMEOUT_SECONDS,
    PREFIX,
    ROOT,
    STANDIN_BUILD_ARGS,
    Engine,
    inspect,
    ok,
    run,
    wait_until,
)

pytestmark = pytest.mark.image

PROJECT = PREFIX
HEALTHY_WITHIN_SECONDS = 120
COMPOSE_IMAGE = f"localhost/{PREFIX}:compose"
DEV_SECRETS = ROOT / "docker" / "dev-secrets"
# The stand-in PostgreSQL reads POSTGRES_PASSWORD only, not the real image's
# POSTGRES_PASSWORD_FILE: this file, added after docker-compose.yml, gives it
# the development secret's content. Nothing else is changed.
STANDIN_OVERRIDE = """\
services:
  postgres:
    environment:
      POSTGRES_PASSWORD: {password}
"""


@dataclass(frozen=True)
class Stack:
    engine: Engine
    port: int
    override: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # What a user's shell would not carry into this project.
            if not key.startswith(("LOCAL_", "COMPOSE_", "API_PORT", "GROUNDWORK_"))
        }
        env.update(
            DOCKER_HOST=self.engine.docker_host,
            # podman's API service has no BuildKit: the classic builder, as Docker's before it.
            DOCKER_BUILDKIT="0",
            COMPOSE_BAKE="false",
            API_PORT=str(self.port),
            GROUNDWORK_IMAGE=COMPOSE_IMAGE,
        )
        env.update(extra)
        return env

    def compose(
        self,
        *args: str,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
        env: dict[str, str] | None = None,
    ) -> Any:
        return run(
            self.engine.compose,
            "-p",
            PROJECT,
            "-f",
            "docker-compose.yml",
            "-f",
            str(self.override),
            *args,
            env=self.env(**(env or {})),
            timeout=timeout,
        )

    def config(self, *profiles: str, **extra: str) -> dict[str, Any]:
        flags = [flag for profile in profiles for flag in ("--profile", profile)]
        parsed: dict[str, Any] = yaml.safe_load(ok(self.compose(*flags, "config", env=extra)))
        return parsed

    def containers(self) -> dict[str, dict[str, Any]]:
        listed = ok(self.compose("ps", "-a", "--format", "json"))
        # One JSON document per line (Compose v2.21+), or one array before that.
        rows = (
            json.loads(listed)
            if listed.lstrip().startswith("[")
            else [json.loads(line) for line in listed.splitlines() if line.strip()]
        )
        return {row["Service"]: row for row in rows}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def stack(engine: Engine, pytestconfig: pytest.Config) -> Iterator[Stack]:
    override = engine.work / "compose-standin-postgres.yml"
    password = (DEV_SECRETS / "postgres_password").read_text().strip()
    override.write_text(STANDIN_OVERRIDE.format(password=password))
    stack = Stack(engine=engine, port=free_port(), override=override)
    stack.compose("down", "-v", "--timeout", "0")
    started = time.monotonic()
    built = stack.compose("build", *STANDIN_BUILD_ARGS, timeout=1200)
    ok(built)
    engine.report(pytestconfig, f"compose build took {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    try:
        ok(stack.compose("up", "-d", timeout=300))
        engine.report(pytestconfig, f"compose up returned after {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color")
        print(logs.stdout[-6000:])
        stack.compose("down", "-v", "--timeout", "0", timeout=120)
        run("podman", "rmi", "-f", COMPOSE_IMAGE)


def health(stack: Stack, service: str) -> str:
    return str(stack.containers()[service].get("Health", ""))


def test_the_compose_file_is_valid_for_compose_v2_in_every_profile(stack: Stack) -> None:
    for profiles in ((), ("observability",), ("mail",), ("observability", "mail")):
        stack.config(*profiles)


def test_api_worker_and_migrate_share_one_image_built_once(stack: Stack) -> None:
    services = stack.config()["services"]

    assert [name for name, service in services.items() if "build" in service] == ["api"]
    assert services["migrate"]["image"] == services["api"]["image"]
    assert services["worker"]["image"] == services["api"]["image"]


def test_migrate_completes_before_api_starts(stack: Stack) -> None:
    migrate = inspect(stack.containers()["migrate"]["ID"])
    api = inspect(stack.containers()["api"]["ID"])

    assert migrate["State"]["ExitCode"] == 0
    assert migrate["State"]["FinishedAt"] <= api["State"]["StartedAt"]
    # No server runs in it, so no health to wait for: "Exited (0)", never "(starting)".
    check = (migrate["Config"].get("Healthcheck") or {}).get("Test") or ["NONE"]
    assert check[0] == "NONE", check
    assert health(stack, "migrate") == ""


def test_every_long_running_service_becomes_healthy(stack: Stack) -> None:
    for service in ("postgres", "redis", "api", "worker"):
        deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
        while health(stack, service) != "healthy":
            if time.monotonic() > deadline:
                # What its health checks said, to tell a failing check from one never run.
                state = inspect(stack.containers()[service]["ID"])["State"]
                pytest.fail(f"{service} is not healthy: {state.get('Health')}")
            time.sleep(1)


def test_register_log_in_and_list_through_the_published_port(stack: Stack) -> None:
    wait_until("api is healthy", HEALTHY_WITHIN_SECONDS, lambda: health(stack, "api") == "healthy")
    with httpx.Client(base_url=stack.url(""), timeout=10) as client:
        registered = client.post(
            "/api/v1/auth/register",
            json={"email": "user@example.com", "password": "correct horse battery staple 42"},
        )
        assert registered.status_code == 201, registered.text
        token = client.post(
            "/api/v1/auth/token",
            data={"username": "user@example.com", "password": "correct horse battery staple 42"},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        created = client.post("/api/v1/items", json={"title": "first"}, headers=headers)
        assert created.status_code == 201, created.text
        listed = client.get("/api/v1/items", headers=headers)

    assert listed.status_code == 200, listed.text
    assert [item["title"] for item in listed.json()["items"]] == ["first"]


def test_secrets_are_files_the_app_reads_never_environment_values(stack: Stack) -> None:
    wait_until("api is healthy", HEALTHY_WITHIN_SECONDS, lambda: health(stack, "api") == "healthy")
    api = stack.containers()["api"]["ID"]
    env = dict(
        line.split("=", 1)
        for line in ok(run("podman", "exec", api, "env")).splitlines()
        if "=" in line
    )
    # Read as the server's own user (uid 10001), as it read them at start-up.
    mounted = {
        name: ok(run("podman", "exec", api, "cat", f"/run/secrets/{name}")).strip()
        for name in ("secret_key", "database_url")
    }

    assert env["SECRETS_DIR"] == "/run/secrets"
    assert env["SECRET_KEY"] == ""
    assert env["DATABASE_URL"] == ""
    assert ok(run("podman", "exec", api, "id", "-u")).strip() == "10001"
    assert mounted == {
        name: (DEV_SECRETS / name).read_text().strip() for name in ("secret_key", "database_url")
    }
    assert not any(value and value in env.values() for value in mounted.values())


def run_migrate(stack: Stack, name: str, **extra: str) -> tuple[int, str]:
    """`compose run migrate` once; its container's exit status and what it printed.

    The status is read from the container: `compose run` against podman's API
    here exits 0 whatever the command in the container did.
    """
    answer = stack.compose("run", "--name", name, "--no-deps", "migrate", env=extra)
    try:
        status = int(inspect(name)["State"]["ExitCode"])
    finally:
        run("podman", "rm", "-f", "-t", "0", name)
    return status, answer.stdout + answer.stderr


def test_production_refuses_the_development_secrets(stack: Stack) -> None:
    status, printed = run_migrate(stack, f"{PREFIX}-refused", APP_ENV="production")

    assert status != 0, printed
    assert "SECRET_KEY must be set to a random value" in printed


def test_production_runs_with_secrets_generated_into_their_own_directory(
    stack: Stack, tmp_path: Path
) -> None:
    wait_until("api is healthy", HEALTHY_WITHIN_SECONDS, lambda: health(stack, "api") == "healthy")
    # As docs/deploying.md has an operator do it, except that the database
    # password must stay the one this stack's volume was initialised with.
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "secret_key").write_text(secrets.token_urlsafe(48) + "\n")
    for name in ("database_url", "postgres_password"):
        (directory / name).write_text((DEV_SECRETS / name).read_text())
    for path in directory.iterdir():
        path.chmod(0o444)

    status, printed = run_migrate(
        stack, f"{PREFIX}-production", APP_ENV="production", GROUNDWORK_SECRETS=str(directory)
    )

    assert status == 0, printed
    assert "error:" not in printed


def test_the_worker_sends_the_reset_mail_the_api_queued(stack: Stack) -> None:
    wait_until("api is healthy", HEALTHY_WITHIN_SECONDS, lambda: health(stack, "api") == "healthy")
    with httpx.Client(base_url=stack.url(""), timeout=10) as client:
        client.post(
            "/api/v1/auth/register",
            json={"email": "mailed@example.com", "password": "correct horse battery staple 42"},
        )
        requested = client.post(
            "/api/v1/auth/password-reset/request", json={"email": "mailed@example.com"}
        )
    assert requested.status_code == 202, requested.text

    # MAIL_BACKEND=console in development: the worker prints the mail to its log.
    wait_until(
        "the worker prints the reset mail",
        HEALTHY_WITHIN_SECONDS,
        lambda: "mailed@example.com" in ok(stack.compose("logs", "--no-color", "worker")),
    )
    assert "mailed@example.com" not in ok(stack.compose("logs", "--no-color", "api"))


def test_the_port_is_published_on_loopback_only(stack: Stack) -> None:
    bindings = inspect(stack.containers()["api"]["ID"])["HostConfig"]["PortBindings"]

    assert bindings == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(stack.port)}]}


def test_a_plain_up_sends_no_traces_anywhere(stack: Stack) -> None:
    api = stack.containers()["api"]["ID"]
    env = ok(run("podman", "exec", api, "env")).splitlines()

    assert "OTEL_EXPORTER_OTLP_ENDPOINT=" in env
    logs = ok(stack.compose("logs", "--no-color", "api"))
    assert "Failed to resolve" not in logs
    assert "Failed to export" not in logs


def test_each_profile_wires_the_api_to_its_service(stack: Stack) -> None:
    traced = stack.config("observability", LOCAL_OTLP_ENDPOINT="http://jaeger:4318")
    environment = traced["services"]["api"]["environment"]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert "jaeger" in traced["services"]

    mailed = stack.config("mail", LOCAL_MAIL_BACKEND="smtp")
    environment = mailed["services"]["api"]["environment"]
    assert {key: environment[key] for key in ("MAIL_BACKEND", "SMTP_HOST", "SMTP_PORT")} == {
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "mailpit",
        "SMTP_PORT": "1025",
    }
    assert environment["SMTP_STARTTLS"] == "false"
    [published] = mailed["services"]["mailpit"]["ports"]
    assert (published["host_ip"], published["published"], published["target"]) == (
        "127.0.0.1",
        "8025",
        8025,
    )


def test_down_drains_and_stops_the_api_within_its_grace_period(
    stack: Stack, pytestconfig: pytest.Config
) -> None:
    wait_until("api is healthy", HEALTHY_WITHIN_SECONDS, lambda: health(stack, "api") == "healthy")
    api = stack.containers()["api"]["ID"]
    worker = stack.containers()["worker"]["ID"]
    grace = int(str(stack.config()["services"]["api"]["stop_grace_period"]).rstrip("s"))

    started = time.monotonic()
    ok(stack.compose("stop", timeout=grace + 60))
    took = time.monotonic() - started
    stack.engine.report(pytestconfig, f"compose stop took {took:.1f} s (grace period {grace} s)")
    state = inspect(api)["State"]
    printed = run("podman", "logs", api)
    logs = ok(printed) + printed.stderr
    worker_state = inspect(worker)["State"]
    worker_printed = run("podman", "logs", worker)
    worker_logs = ok(worker_printed) + worker_printed.stderr
    ok(stack.compose("down", "-v", timeout=120))

    # Exit 0 after the drain, not 137: the grace period was never used up.
    assert state["ExitCode"] == 0, state
    assert not state.get("OOMKilled")
    assert took < grace, f"stopping took {took:.0f} s of a {grace} s grace period"
    assert "server.draining" in logs
    assert "server.drained" in logs
    # The worker drains too: no job cut off, exit 0.
    assert worker_state["ExitCode"] == 0, worker_state
    assert "worker.drained" in worker_logs
    assert stack.containers() == {}
