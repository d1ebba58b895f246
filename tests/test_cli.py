"""Operator commands, run as an operator would: a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.core.resources import Resources
from app.users.models import User
from tests.conftest import AccountFactory

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=60,
        check=False,
    )


@pytest.fixture
def cli_env(resources: Resources) -> dict[str, str]:
    settings = resources.settings
    return {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key.get_secret_value(),
    }


async def test_create_admin_is_idempotent(cli_env: dict[str, str], resources: Resources) -> None:
    first = run_cli(
        "create-admin",
        "root@example.com",
        "--password-stdin",
        env=cli_env,
        stdin="a-long-admin-password\n",
    )
    second = run_cli(
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


async def test_create_admin_refuses_a_weak_password(cli_env: dict[str, str]) -> None:
    result = run_cli(
        "create-admin", "root@example.com", "--password-stdin", env=cli_env, stdin="password\n"
    )

    assert result.returncode != 0
    assert "too common" in result.stderr


def test_an_unknown_command_exits_non_zero() -> None:
    result = run_cli("frobnicate", env={})

    assert result.returncode == 2
    assert "invalid choice" in result.stderr


async def test_set_password_changes_it_and_ends_every_session(
    cli_env: dict[str, str], client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    result = run_cli(
        "set-password", account.email, "--password-stdin", env=cli_env, stdin="operator-chosen-pw\n"
    )

    assert result.returncode == 0, result.stderr
    assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 401
    token = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": "operator-chosen-pw"}
    )
    assert token.status_code == 200


async def test_set_password_for_an_unknown_email_fails_clearly(cli_env: dict[str, str]) -> None:
    result = run_cli(
        "set-password",
        "nobody@example.com",
        "--password-stdin",
        env=cli_env,
        stdin="whatever-pw-1\n",
    )

    assert result.returncode == 2
    assert "no account" in result.stderr


async def test_list_users_shows_accounts_and_roles(
    cli_env: dict[str, str], make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))

    result = run_cli("list-users", env=cli_env)

    assert result.returncode == 0, result.stderr
    assert admin.email in result.stdout
    assert "admin,member" in result.stdout
