"""Log lines: one configuration, one access line per request, ids bound per request."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from app.core.config import Settings
from app.main import create_app
from tests.conftest import AccountFactory, client_for
from tests.observability.conftest import LogLines

LogCapture = Callable[[], LogLines]


async def test_each_request_writes_one_access_line_with_its_route_template(
    app: FastAPI, client: httpx.AsyncClient, capture_logs: LogCapture, make_account: AccountFactory
) -> None:
    account = await make_account()
    logs = capture_logs()
    item = await client.post("/api/v1/items", json={"title": "a"}, headers=account.headers)

    response = await client.get(f"/api/v1/items/{item.json()['id']}", headers=account.headers)

    request_id = response.headers["X-Request-ID"]
    [line] = logs.access(request_id)
    assert line["route"] == "/api/v1/items/{item_id}"
    assert line["path"] == f"/api/v1/items/{item.json()['id']}"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["client_ip"] == "127.0.0.1"
    assert line["user_id"] == str(account.id)
    assert line["level"] == "info"


async def test_every_liveness_probe_writes_its_access_line(
    client: httpx.AsyncClient, capture_logs: LogCapture
) -> None:
    # Its answer is rendered once and then sent again (app/api/fixed_answers.py).
    logs = capture_logs()
    probes = [await client.get("/health/live") for _ in range(3)]

    for probe in probes:
        [line] = logs.access(probe.headers["X-Request-ID"])
        assert line["route"] == "/health/live"
        assert line["status"] == 200


async def test_every_log_line_of_a_request_carries_its_request_id(
    app: FastAPI, client: httpx.AsyncClient, capture_logs: LogCapture, make_account: AccountFactory
) -> None:
    account = await make_account()
    logs = capture_logs()

    response = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": "wrong-password-1"}
    )

    assert response.status_code == 401
    lines = [
        r
        for r in logs.records()
        if r.get("request_id") == response.headers["X-Request-ID"]
        and r["logger"].startswith("app.")
    ]
    events = [line["event"] for line in lines]
    assert "auth.login_failed" in events
    assert "http.request" in events
    # Lines written inside the handler know the route too.
    assert all(line["route"] == "/api/v1/auth/token" for line in lines)


async def test_a_user_id_does_not_leak_into_the_next_request(
    app: FastAPI, client: httpx.AsyncClient, capture_logs: LogCapture, make_account: AccountFactory
) -> None:
    account = await make_account()
    logs = capture_logs()

    mine = await client.get("/api/v1/users/me", headers=account.headers)
    anonymous = await client.get("/health/live")

    [first] = logs.access(mine.headers["X-Request-ID"])
    [second] = logs.access(anonymous.headers["X-Request-ID"])
    assert first["user_id"] == str(account.id)
    assert "user_id" not in second


async def test_an_unknown_path_is_logged_under_one_route_name(
    app: FastAPI, client: httpx.AsyncClient, capture_logs: LogCapture
) -> None:
    logs = capture_logs()

    response = await client.get("/no/such/place")

    [line] = logs.access(response.headers["X-Request-ID"])
    assert line["status"] == 404
    assert line["route"] == "unmatched"


async def test_an_unhandled_error_is_logged_once_with_its_stack_and_request_id(
    app_factory: Callable[..., FastAPI], capture_logs: LogCapture
) -> None:
    app = app_factory()

    @app.get("/crash-for-test")
    async def crash() -> None:
        raise RuntimeError("the disk caught fire")

    logs = capture_logs()
    async with LifespanManager(app), client_for(app) as client:
        response = await client.get("/crash-for-test")

    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    errors = [r for r in logs.records() if r["level"] == "error"]
    assert len(errors) == 1
    [error] = errors
    assert error["request_id"] == request_id
    assert error["route"] == "/crash-for-test"
    [exception] = error["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert any(frame["name"] == "crash" for frame in exception["frames"])
    # Locals stay out of tracebacks: a frame's variables can hold a password.
    assert all("locals" not in frame for frame in exception["frames"])
    [access] = logs.access(request_id)
    assert access["status"] == 500


async def test_library_and_server_records_are_json_lines_too(
    app: FastAPI, capture_logs: LogCapture
) -> None:
    logs = capture_logs()

    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("sqlalchemy.pool").warning("pool hiccup")
    logging.getLogger("sqlalchemy.engine").info("a statement nobody asked to see")

    records = logs.records()
    assert [(r["logger"], r["event"]) for r in records] == [
        ("uvicorn.error", "Invalid HTTP request received."),
        ("sqlalchemy.pool", "pool hiccup"),
    ]


async def test_uvicorn_access_records_are_silenced(app: FastAPI, capture_logs: LogCapture) -> None:
    logs = capture_logs()

    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')

    assert logs.records() == []


@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
async def test_log_level_drops_quieter_events(
    settings: Settings, capture_logs: LogCapture, level: str
) -> None:
    create_app(settings.model_copy(update={"log_level": level}))
    logs = capture_logs()
    log = structlog.get_logger("test.levels")

    log.info("quiet")
    log.error("loud")

    assert [r["event"] for r in logs.records()] == ["loud"]


async def test_a_logger_already_used_follows_each_later_configuration(
    settings: Settings, capture_logs: LogCapture
) -> None:
    # Loggers are cached on first use, as the app's module-level ones are.
    create_app(settings.model_copy(update={"log_level": "INFO"}))
    log = structlog.get_logger("test.cached")
    log.info("cached")

    create_app(settings.model_copy(update={"log_level": "WARNING"}))
    quiet = capture_logs()
    log.info("dropped")
    log.warning("kept")
    assert [r["event"] for r in quiet.records()] == ["kept"]
    create_app(settings.model_copy(update={"log_level": "DEBUG", "log_format": "console"}))
    loud = capture_logs()
    log.debug("now.shown")

    assert "now.shown" in loud.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(loud.text())


async def test_values_json_has_no_type_for_still_make_a_line(
    settings: Settings, capture_logs: LogCapture
) -> None:
    class Described:
        def __structlog__(self) -> str:
            return "described"

    create_app(settings.model_copy(update={"log_format": "json"}))
    logs = capture_logs()
    log = structlog.get_logger("test.types")

    log.info(
        "typed",
        when=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        id=uuid.UUID(int=1),
        described=Described(),
        other=object(),
    )
    log.info("huge", count=2**70)

    typed, huge = logs.records()
    assert typed["when"] == "2026-01-02T03:04:05+00:00"
    assert typed["id"] == "00000000-0000-0000-0000-000000000001"
    assert typed["described"] == "described"
    assert typed["other"].startswith("<object object at ")
    assert huge["count"] == 2**70


async def test_a_line_written_after_its_stream_closed_reaches_the_process_stderr(
    settings: Settings, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replaced)
    create_app(settings.model_copy(update={"log_format": "json"}))
    replaced.close()

    structlog.get_logger("test.late").warning("late.line")
    logging.getLogger("test.late.library").warning("late library line")

    err = capfd.readouterr().err
    assert "Logging error" not in err
    assert '"event":"late.line"' in err
    assert "late library line" in err


async def test_console_format_is_not_json(settings: Settings, capture_logs: LogCapture) -> None:
    create_app(settings.model_copy(update={"log_format": "console"}))
    logs = capture_logs()

    structlog.get_logger("test.console").info("hello.console", answer=42)

    line = re.sub(r"\x1b\[[0-9;]*m", "", logs.text().strip())
    assert "hello.console" in line
    assert "answer=42" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


async def test_a_production_start_warns_of_each_setting_left_at_a_risky_default(
    capture_logs: LogCapture,
) -> None:
    # Nothing connects to the database at start-up without a first admin to create.
    settings = Settings(
        _env_file=None,
        app_env="production",
        database_url="postgresql+asyncpg://app:pw@db.invalid:5432/groundwork",
        secret_key=SecretStr("Ue7GfXq2LwV9tR4bN1mK8sZ3cY6hJ0pD5aW"),
    )
    app = create_app(settings)
    logs = capture_logs()

    async with LifespanManager(app):
        pass

    cautions = [r for r in logs.records() if r["event"] == "config.production_caution"]
    assert [r["level"] for r in cautions] == ["warning"] * 3
    assert [r["caution"].split()[0] for r in cautions] == [
        "TRUSTED_HOSTS",
        "REDIS_URL",
        "MAIL_BACKEND",
    ]
