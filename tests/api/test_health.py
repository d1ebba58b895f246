"""Liveness and readiness: what orchestrators and load balancers rely on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from app.core.errors import problem_type
from app.core.resources import Resources
from tests.conftest import client_for

CLOSED_PORT_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
CLOSED_PORT_REDIS_URL = "redis://127.0.0.1:1/0"
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
    assert int(response.headers["Retry-After"]) > 0


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
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"


async def test_ready_lists_only_the_dependencies_configured(
    app_factory: Callable[..., FastAPI],
) -> None:
    async with serving(app_factory(redis_url=None)) as http:
        response = await http.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_ready_stays_200_when_redis_is_down_and_says_so(
    app_factory: Callable[..., FastAPI],
) -> None:
    """Without Redis the replica serves: general limits fail open, security ones count here."""
    application = app_factory(redis_url=CLOSED_PORT_REDIS_URL)

    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")

    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "unavailable"}}
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}


async def test_ready_does_not_queue_behind_a_full_request_pool(
    app_factory: Callable[..., FastAPI],
) -> None:
    """Requests holding every pooled connection do not make a working replica look dead."""
    application = app_factory(
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout_seconds=HANG_GUARD_SECONDS,
        health_check_timeout_seconds=1.0,
    )
    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        resources = application.state.resources
        assert isinstance(resources, Resources)
        async with resources.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            response = await http.get("/health/ready")

    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok"


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
