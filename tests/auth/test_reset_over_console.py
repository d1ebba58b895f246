"""The console mail backend: the development channel that hands a developer the reset token."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from app.core.config import Settings
from app.core.mail import Mail, create_mailer
from tests.conftest import client_for, register

EMAIL = "console-mail@example.com"


# The development default: no REDIS_URL, so the server runs the outbox itself.
IN_PROCESS = {"jobs_in_process": True, "jobs_poll_seconds": 0.05}
MAIL_WAIT_SECONDS = 10.0


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of the output as a JSON object: fails on a line that is not one."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def output_until(capfd: pytest.CaptureFixture[str], printed: str) -> tuple[str, str]:
    """Standard output and error until `printed` shows on the output: the job runs after the 202."""
    out, err = "", ""
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while printed not in out:
        assert time.monotonic() < deadline, f"{printed!r} was never printed:\n{out}{err}"
        await asyncio.sleep(0.05)
        captured = capfd.readouterr()
        out, err = out + captured.out, err + captured.err
    return out, err


async def test_with_json_logs_the_mail_is_one_json_line_and_only_it_carries_the_token(
    app_factory: Callable[..., FastAPI], capfd: pytest.CaptureFixture[str]
) -> None:
    app = app_factory(mail_backend="console", log_format="json", log_level="DEBUG", **IN_PROCESS)
    async with LifespanManager(app), client_for(app) as client:
        await register(client, EMAIL)
        capfd.readouterr()

        requested = await client.post("/api/v1/auth/password-reset/request", json={"email": EMAIL})
        assert requested.status_code == 202
        out, err = await output_until(capfd, '"mail.printed"')
        records = json_lines(out) + json_lines(err)
        [mail] = [r for r in records if r["event"] == "mail.printed"]
        match = re.search(r"Reset token: (\S+)", mail["body"])
        assert match is not None, mail["body"]
        token = match.group(1)
        confirmed = await client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "a-new-passphrase-for-console"},
        )

    assert confirmed.status_code == 204
    assert mail["to"] == EMAIL
    assert mail["subject"] == "Reset your password"
    assert mail["level"] == "info"
    # The request's own log lines were written too, and none carries the token.
    others = [r for r in records if r is not mail]
    assert any(r["event"] == "http.request" for r in others)
    assert [r for r in others if token in json.dumps(r)] == []


async def test_with_console_logs_the_mail_is_printed_as_text(
    app_factory: Callable[..., FastAPI], capfd: pytest.CaptureFixture[str]
) -> None:
    app = app_factory(mail_backend="console", log_format="console", **IN_PROCESS)
    async with LifespanManager(app), client_for(app) as client:
        await register(client, EMAIL)
        capfd.readouterr()

        requested = await client.post("/api/v1/auth/password-reset/request", json={"email": EMAIL})
        out, _ = await output_until(capfd, "--- mail to")

    assert requested.status_code == 202
    assert f"--- mail to {EMAIL}: Reset your password\n" in out
    assert re.search(r"Reset token: \S+", out)


async def test_in_production_the_console_backend_prints_no_body(
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        _env_file=None,
        app_env="production",
        database_url="postgresql+asyncpg://app:pw@db.invalid:5432/groundwork",
        secret_key=SecretStr("Ue7GfXq2LwV9tR4bN1mK8sZ3cY6hJ0pD5aW"),
        mail_backend="console",
    )
    mailer = create_mailer(settings)

    await mailer.send(Mail(to=EMAIL, subject="Reset your password", body="Reset token: abcdef"))

    [record] = json_lines(capfd.readouterr().out)
    assert record["event"] == "mail.dropped"
    assert "abcdef" not in json.dumps(record)
    assert EMAIL not in json.dumps(record)
