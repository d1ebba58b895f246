"""Every error is an RFC 9457 problem; a crash shows nothing internal."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request

from app.core.errors import PROBLEM_TYPE_PREFIX, DomainError, problem_type
from tests.conftest import client_for

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}
PROBLEM_JSON = "application/problem+json"
REGISTER = "/api/v1/auth/register"
INTERNAL_DETAIL = "secret-internal-detail /srv/app/x.py"
ERRORS_DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
DOWN_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/none"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_TYPE_PREFIX)
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def log_events(captured: str) -> list[dict[str, Any]]:
    """The JSON log lines written to stderr (LOG_FORMAT=json in tests)."""
    events = []
    for line in captured.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


async def _boom() -> None:
    raise RuntimeError(INTERNAL_DETAIL)


@asynccontextmanager
async def serving_boom(app_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app with one extra route that crashes.

    Built inside the test body: building the app configures logging, so its
    handler writes to the stderr that `capsys` captures for this test.
    """
    application: FastAPI = app_factory()
    application.add_api_route("/boom", _boom)
    async with LifespanManager(application), client_for(application) as http:
        yield http


async def test_unknown_route_is_a_problem_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")

    body = assert_problem(response, 404)
    assert body["type"] == problem_type("not-found")


async def test_unknown_api_route_is_a_problem_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")

    assert_problem(response, 404)


async def test_wrong_method_is_a_problem_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.get(REGISTER)

    body = assert_problem(response, 405)
    assert body["type"] == problem_type("method-not-allowed")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert "POST" in allowed
    assert "GET" not in allowed


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/items", "GET, POST"),
        ("/api/v1/items/00000000-0000-0000-0000-000000000000", "DELETE, GET, PATCH"),
        ("/api/v1/users/me", "DELETE, GET, PATCH"),
        ("/api/v1/roles/editor", "DELETE, PATCH"),
    ],
)
async def test_allow_lists_every_method_of_the_path_not_just_the_first_route(
    client: httpx.AsyncClient, path: str, methods: str
) -> None:
    response = await client.put(path)

    assert_problem(response, 405)
    assert response.headers["Allow"] == methods


async def test_malformed_json_body_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REGISTER,
        content=b'{"email": "a@example.com", "password": ',
        headers={"Content-Type": "application/json"},
    )

    body = assert_problem(response, 422)
    assert body["type"] == problem_type("validation-error")
    assert body["errors"]
    for issue in body["errors"]:
        assert set(issue) == {"loc", "msg", "type"}


async def test_wrong_type_is_a_validation_problem_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        REGISTER, json={"email": ["not", "a", "string"], "password": "a-fine-Password-91"}
    )

    body = assert_problem(response, 422)
    assert body["type"] == problem_type("validation-error")
    assert ["body", "email"] in [issue["loc"] for issue in body["errors"]]
    for issue in body["errors"]:
        assert set(issue) == {"loc", "msg", "type"}
        assert isinstance(issue["msg"], str)
        assert isinstance(issue["type"], str)


async def test_unknown_field_is_rejected_not_assigned(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REGISTER,
        json={"email": "mass@example.com", "password": "a-fine-Password-91", "is_admin": True},
    )

    body = assert_problem(response, 422)
    issues = {tuple(issue["loc"]): issue for issue in body["errors"]}
    assert ("body", "is_admin") in issues
    assert issues[("body", "is_admin")]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("extra", "password"),
    [
        ({"is_admin": True}, "Echo-Me-Not-Password-1"),
        ({}, "Echo-Me-Not-" + "x" * 200),
        ({}, "Ech0!"),
        ({"email": 42}, "Echo-Me-Not-Password-2"),
    ],
    ids=["unknown-field", "too-long", "too-short", "wrong-type-beside"],
)
async def test_validation_problem_never_echoes_the_password(
    client: httpx.AsyncClient, extra: dict[str, Any], password: str
) -> None:
    payload = {"email": "echo@example.com", "password": password, **extra}

    response = await client.post(REGISTER, json=payload)

    body = assert_problem(response, 422)
    assert body["errors"]
    for issue in body["errors"]:
        assert set(issue) == {"loc", "msg", "type"}
    assert password not in response.text
    assert password[:12] not in response.text


async def test_unhandled_exception_is_an_opaque_problem_500(app_factory: Any) -> None:
    async with serving_boom(app_factory) as http:
        response = await http.get("/boom")

    body = assert_problem(response, 500)
    assert body["type"] == problem_type("internal-error")
    assert response.headers["X-Request-ID"]
    text = response.text
    for leak in ("secret-internal-detail", "/srv/app", "RuntimeError", "Traceback", ".py"):
        assert leak not in text


async def test_unhandled_exception_keeps_the_callers_request_id(app_factory: Any) -> None:
    async with serving_boom(app_factory) as http:
        response = await http.get("/boom", headers={"X-Request-ID": "trace-me-500"})

    body = assert_problem(response, 500)
    assert response.headers["X-Request-ID"] == "trace-me-500"
    assert body["request_id"] == "trace-me-500"


async def test_unhandled_exception_is_logged_once_with_its_stack(
    app_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving_boom(app_factory) as http:
        capsys.readouterr()  # only what this request writes
        response = await http.get("/boom")
        captured = capsys.readouterr()

    assert response.status_code == 500
    events = log_events(captured.err + captured.out)
    crashes = [event for event in events if "exception" in event]
    assert len(crashes) == 1, crashes
    crash = crashes[0]
    assert crash["event"] == "request.unhandled_error"
    assert crash["level"] == "error"
    assert crash["request_id"] == response.headers["X-Request-ID"]
    # The stack, for the operator: exception type, message and frames down to the raise.
    (error,) = crash["exception"]
    assert error["exc_type"] == "RuntimeError"
    assert error["exc_value"] == INTERNAL_DETAIL
    assert error["frames"][-1]["name"] == _boom.__name__
    mentions = [event for event in events if INTERNAL_DETAIL in json.dumps(event)]
    assert mentions == [crash]


async def test_database_outage_log_never_contains_the_submitted_password(
    app_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    application: FastAPI = app_factory(database_url=DOWN_DATABASE_URL)
    password = "Never-Log-This-Passw0rd"
    async with LifespanManager(application), client_for(application) as http:
        login = await http.post(
            "/api/v1/auth/token", data={"username": "a@example.com", "password": password}
        )
        register = await http.post(REGISTER, json={"email": "b@example.com", "password": password})
    captured = capsys.readouterr()

    assert login.status_code == 503
    assert register.status_code == 503
    events = log_events(captured.err)
    assert [event["event"] for event in events if event["level"] == "warning"].count(
        "database.unavailable"
    ) == 2
    assert password not in captured.err
    assert password not in captured.out


async def test_crash_log_never_contains_the_submitted_password(
    app_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "Never-Log-This-Passw0rd"

    async def crash_after_reading_the_password(request: Request) -> None:
        form = await request.form()
        raise RuntimeError(f"crashed while checking {form['username']!s}")

    application: FastAPI = app_factory()
    application.add_api_route("/crash", crash_after_reading_the_password, methods=["POST"])
    async with LifespanManager(application), client_for(application) as http:
        response = await http.post(
            "/crash", data={"username": "a@example.com", "password": password}
        )
    captured = capsys.readouterr()

    assert response.status_code == 500
    assert any("exception" in event for event in log_events(captured.err))
    assert password not in captured.err
    assert password not in captured.out


def _domain_error_classes() -> list[type[DomainError]]:
    found: list[type[DomainError]] = []
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


# A row of the types table: | `slug` | status | when |
_TYPE_ROW = re.compile(r"^\|\s*`([a-z0-9<>-]+)`\s*\|\s*(\d{3}|[a-z ]*status)\s*\|", re.MULTILINE)


def documented_types() -> dict[str, str]:
    """Problem types in docs/errors.md: the slug of each table row, with its status."""
    assert ERRORS_DOC.is_file(), "docs/errors.md documents every problem type"
    text = ERRORS_DOC.read_text("utf-8")
    documented = {problem_type(slug): status for slug, status in _TYPE_ROW.findall(text)}
    # A type written out in full anywhere counts as documented too.
    for full in re.findall(re.escape(PROBLEM_TYPE_PREFIX) + r"[a-z0-9-]+", text):
        documented.setdefault(full, "")
    return documented


@pytest.mark.parametrize("error", _domain_error_classes(), ids=lambda cls: cls.__name__)
def test_every_domain_problem_type_is_documented(error: type[DomainError]) -> None:
    documented = documented_types()

    kind = problem_type(error.slug)
    assert kind in documented
    if documented[kind].isdigit():
        assert int(documented[kind]) == error.status


async def test_framework_problem_types_are_documented(app_factory: Any) -> None:
    async with serving_boom(app_factory) as http:
        answers = [
            await http.get("/no/such/route"),
            await http.get(REGISTER),
            await http.post(REGISTER, json={}),
            await http.get("/boom"),
        ]

    documented = documented_types()
    assert len({answer.json()["type"] for answer in answers}) == 4
    for answer in answers:
        kind = answer.json()["type"]
        assert kind in documented
        assert documented[kind] == str(answer.status_code)
