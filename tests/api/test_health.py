"""Liveness and readiness: what orchestrators and load balancers rely on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.errors import problem_type
from app.core.resources import Resources
from tests.conftest import client_for

CLOSED_PORT_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
# Only a guard against a hang failing the run forever; not a timing assertion.
HANG_GUARD_SECONDS = 60


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == problem_type("service-unavailable")
    assert body["status"] == 503
    assert body["instance"] == "/health/ready"
    assert body["request_id"] == response.headers["X-Request-ID"]


@asynccontextmanager
async def serving(application: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(application), client_for(application) as http:
        yield http


async def test_live_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]


async def test_ready_answers_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_503_when_the_database_is_unreachable(
    app_factory: Callable[..., FastAPI],
) -> None:
    application = app_factory(database_url=CLOSED_PORT_URL)

    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")

    assert_unavailable(ready)
    assert "postgres" not in ready.text
    assert "127.0.0.1" not in ready.text
    assert live.status_code == 200


async def test_ready_is_503_when_the_database_never_answers(
    app_factory: Callable[..., FastAPI], silent_port: int
) -> None:
    """A database that accepts connections but says nothing must not hang the probe."""
    application = app_factory(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{silent_port}/silent",
        db_connect_timeout_seconds=HANG_GUARD_SECONDS * 2,
        health_check_timeout_seconds=0.5,
    )
    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        response = await http.get("/health/ready")

    assert_unavailable(response)


async def test_ready_is_503_once_shutdown_has_begun(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    assert (await client.get("/health/ready")).status_code == 200

    resources.shutting_down = True
    ready = await client.get("/health/ready")
    live = await client.get("/health/live")

    assert_unavailable(ready)
    assert live.status_code == 200
