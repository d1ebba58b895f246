"""Operator commands: `app.cli.main` in this process, and `python -m app` as a process of its own.

The entry point, its exit codes and what it does without a terminal are run
as an operator would, in a separate process; the account commands behind it
run in-process (a second interpreter and app import each cost more than the
command itself), on the same environment variables and standard input.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.core.resources import Resources
from app.identity.models import User
from tests.conftest import AccountFactory, Operator, free_port
from tests.helpers import app_environment

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str], stdin: str | None = ""
) -> subprocess.CompletedProcess[str]:
    """`stdin=None`: no input and no terminal (a new session), as under cron or CI."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=60,
        check=False,
        start_new_session=stdin is None,
    )


@pytest.fixture
def cli_env(resources: Resources) -> dict[str, str]:
    return app_environment(resources.settings)


async def test_create_admin_is_idempotent(
    operator: Operator, cli_env: dict[str, str], resources: Resources
) -> None:
    first = await operator(
        "create-admin",
        "root@example.com",
        "--password-stdin",
        env=cli_env,
        stdin="a-long-admin-password\n",
    )
    second = await operator(
        "create-admin",
        "ROOT@example.com",
        "--password-stdin",
        env=cli_env,
        stdin="a-long-admin-password\n",
    )

    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "created"
    assert second.returncode == 0
    assert "already exists" in second.stdout
    async with resources.sessionmaker() as session:
        users = (await session.scalars(select(User))).all()
    assert [user.email for user in users] == ["root@example.com"]


async def test_create_admin_refuses_a_weak_password(
    operator: Operator, cli_env: dict[str, str]
) -> None:
    result = await operator(
        "create-admin", "root@example.com", "--password-stdin", env=cli_env, stdin="password\n"
    )

    assert result.returncode != 0
    assert "too common" in result.stderr


def test_an_unknown_command_exits_non_zero() -> None:
    result = run_cli("frobnicate", env={})

    assert result.returncode == 2
    assert "invalid choice" in result.stderr


async def test_set_password_changes_it_and_ends_every_session(
    operator: Operator,
    cli_env: dict[str, str],
    client: httpx.AsyncClient,
    make_account: AccountFactory,
) -> None:
    account = await make_account()

    result = await operator(
        "set-password", account.email, "--password-stdin", env=cli_env, stdin="operator-chosen-pw\n"
    )

    assert result.returncode == 0, result.stderr
    assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 401
    token = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": "operator-chosen-pw"}
    )
    assert token.status_code == 200


async def test_set_password_for_an_unknown_email_fails_clearly(
    operator: Operator, cli_env: dict[str, str]
) -> None:
    result = await operator(
        "set-password",
        "nobody@example.com",
        "--password-stdin",
        env=cli_env,
        stdin="whatever-pw-1\n",
    )

    assert result.returncode == 2
    assert "no account" in result.stderr


async def test_list_users_shows_accounts_and_roles(
    operator: Operator, cli_env: dict[str, str], make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))

    result = await operator("list-users", env=cli_env)

    assert result.returncode == 0, result.stderr
    assert admin.email in result.stdout
    assert "admin,member" in result.stdout


async def test_create_admin_without_a_terminal_asks_for_password_stdin(
    cli_env: dict[str, str], resources: Resources
) -> None:
    result = run_cli("create-admin", "root@example.com", env=cli_env, stdin=None)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--password-stdin" in result.stderr
    async with resources.sessionmaker() as session:
        assert (await session.scalars(select(User))).all() == []


def test_serve_reload_is_refused_in_production() -> None:
    production = {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        # Never reached: the refusal comes first.
        "DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/unused",
    }

    result = run_cli("serve", "--reload", env=production)

    assert result.returncode != 0
    assert "--reload is for development" in result.stderr


def test_serve_reload_serves_the_api(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--reload"],
            cwd=ROOT,
            env={
                "PATH": os.environ.get("PATH", ""),
                **cli_env,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "LOG_FORMAT": "json",
            },
            stdout=output,
            stderr=output,
            # Its own process group: the reloader's worker is stopped with it.
            start_new_session=True,
        )
    try:
        assert wait_until_live(f"http://127.0.0.1:{port}", process), log.read_text()
        assert "Will watch for changes" in log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_until_live(base: str, process: subprocess.Popen[bytes]) -> bool:
    # Bounded, so a server that never comes up fails the test instead of hanging it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/health/live", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


async def test_account_commands_before_migrations_say_to_migrate(
    operator: Operator, tmp_path: Path
) -> None:
    unmigrated = {
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}",
    }

    results = [
        await operator("list-users", env=unmigrated),
        await operator(
            "create-admin",
            "root@example.com",
            "--password-stdin",
            env=unmigrated,
            stdin="a-long-admin-password\n",
        ),
    ]

    for result in results:
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "make migrate" in result.stderr
