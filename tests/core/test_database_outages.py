"""A database that cannot serve a request now is a 503 with Retry-After, never a 500.

These run on the suite's own database; stopping and starting a server is in
tests/faults/.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.errors import ServiceUnavailable, problem_type
from app.core.outages import database_outage
from app.core.resources import Resources
from app.db.types import utcnow
from tests.conftest import client_for, login, register
from tests.core.test_errors import DOWN_DATABASE_URL, assert_problem
from tests.factories import create_account

ITEMS = "/api/v1/items"


def assert_unavailable(response: httpx.Response) -> None:
    body = assert_problem(response, 503)
    assert body["type"] == problem_type("service-unavailable")
    assert int(response.headers["Retry-After"]) >= 1


@asynccontextmanager
async def serving(application: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    async with LifespanManager(application), client_for(application) as http:
        resources = application.state.resources
        assert isinstance(resources, Resources)
        yield http, resources


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("POST", "/api/v1/auth/token", {"data": {"username": "a@example.com", "password": "x"}}),
        (
            "POST",
            "/api/v1/auth/register",
            {"json": {"email": "b@example.com", "password": "p" * 12}},
        ),
        ("GET", ITEMS, {}),
    ],
)
async def test_an_unreachable_database_answers_503_with_retry_after(
    app_factory: Callable[..., FastAPI], method: str, path: str, payload: dict[str, Any]
) -> None:
    async with serving(app_factory(database_url=DOWN_DATABASE_URL)) as (http, resources):
        # A well-signed token, so the route gets as far as the database.
        issued = resources.tokens.issue(subject=uuid.uuid4(), session_id=uuid.uuid4(), now=utcnow())
        headers = {"Authorization": f"Bearer {issued.token}"}
        response = await http.request(method, path, headers=headers, **payload)

    assert_unavailable(response)


async def test_a_database_that_never_answers_the_connect_answers_503(
    app_factory: Callable[..., FastAPI], silent_port: int
) -> None:
    silent = f"postgresql+asyncpg://postgres@127.0.0.1:{silent_port}/none"
    application = app_factory(database_url=silent, db_connect_timeout_seconds=0.3)
    async with serving(application) as (http, _):
        response = await http.post(
            "/api/v1/auth/token", data={"username": "a@example.com", "password": "x" * 12}
        )

    assert_unavailable(response)


async def test_an_exhausted_pool_answers_503_and_recovers_when_a_connection_frees_up(
    app_factory: Callable[..., FastAPI], password_hash: str
) -> None:
    application = app_factory(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2)
    async with serving(application) as (http, resources):
        headers = (await create_account(resources, password_hash)).headers
        held = await resources.engine.connect()
        try:
            response = await http.get(ITEMS, headers=headers)
        finally:
            await held.close()
        recovered = await http.get(ITEMS, headers=headers)

    assert_unavailable(response)
    assert recovered.status_code == 200, recovered.text


async def test_a_statement_that_waits_past_the_statement_timeout_answers_503(
    app_factory: Callable[..., FastAPI], admin_engine: AsyncEngine, password_hash: str
) -> None:
    if admin_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no statement timeout; its lock wait is the busy timeout")
    application = app_factory(db_statement_timeout_seconds=0.3)
    async with serving(application) as (http, resources):
        headers = (await create_account(resources, password_hash)).headers
        # The harness's own transaction holds the table: the app's query waits on it.
        async with admin_engine.connect() as blocker:
            await blocker.execute(text("LOCK TABLE items IN ACCESS EXCLUSIVE MODE"))
            listing = await http.get(ITEMS, headers=headers)
            creating = await http.post(ITEMS, json={"title": "waits"}, headers=headers)
            await blocker.rollback()
        after = await http.get(ITEMS, headers=headers)

    assert_unavailable(listing)
    assert_unavailable(creating)
    # Cancelled on the server, not abandoned: the connection serves the next request.
    assert after.status_code == 200, after.text
    assert after.json()["items"] == []


async def test_a_locked_sqlite_database_answers_503(
    app_factory: Callable[..., FastAPI], tmp_path: Path
) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.05})

    async def write_to_the_locked_database() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO t VALUES (1)"))

    application = app_factory()
    application.add_api_route("/write", write_to_the_locked_database, methods=["POST"])
    try:
        async with serving(application) as (http, _):
            response = await http.post("/write")
    finally:
        await engine.dispose()
        holder.close()

    assert_unavailable(response)


async def test_a_broken_query_is_still_a_500(app_factory: Callable[..., FastAPI]) -> None:
    application = app_factory()

    async def broken_query() -> None:
        engine = application.state.resources.engine
        async with engine.connect() as connection:
            await connection.execute(text("SELECT missing_column FROM no_such_table"))

    application.add_api_route("/broken", broken_query)
    async with serving(application) as (http, _):
        response = await http.get("/broken")

    body = assert_problem(response, 500)
    assert body["type"] == problem_type("internal-error")
    assert "Retry-After" not in response.headers
    assert "no_such_table" not in response.text


async def test_a_full_password_hash_queue_answers_503_then_serves_again(
    app_factory: Callable[..., FastAPI],
) -> None:
    # Slower hashes, so the queue stays full while the login is on its way.
    application = app_factory(
        password_hash_concurrency=1, password_hash_queue_limit=1, password_hash_time_cost=32
    )
    async with serving(application) as (http, resources):
        await register(http, "queued@example.com")
        storm_over = asyncio.Event()

        async def keep_hashing() -> None:
            while not storm_over.is_set():
                with contextlib.suppress(ServiceUnavailable):
                    await resources.hasher.hash("keeps-the-hash-pool-busy")

        # One hash running and one waiting fill the pool and its queue.
        storm = [asyncio.create_task(keep_hashing()) for _ in range(2)]
        await asyncio.sleep(0)
        try:
            refused = await http.post(
                "/api/v1/auth/token", data={"username": "queued@example.com", "password": "x" * 12}
            )
        finally:
            storm_over.set()
            await asyncio.gather(*storm)
        token = await login(http, "queued@example.com")

    assert_unavailable(refused)
    assert token


async def test_a_login_storm_beyond_the_hash_queue_gets_503_never_500(
    app_factory: Callable[..., FastAPI], admin_engine: AsyncEngine
) -> None:
    if admin_engine.dialect.name != "postgresql":
        # SQLite takes its write lock at BEGIN, so logins reach the hasher one at a time.
        pytest.skip("concurrent logins need a database that serves them concurrently")
    application = app_factory(password_hash_concurrency=1, password_hash_queue_limit=2)
    async with LifespanManager(application):
        async with client_for(application) as http:
            emails = [f"storm-{n}@example.com" for n in range(4)]
            for email in emails:
                await register(http, email)

        async def attempt(n: int) -> httpx.Response:
            # Each from its own address, so no per-client limit steps in first.
            async with client_for(application, f"10.0.0.{n + 1}") as caller:
                password = "correct-horse-battery-staple" if n % 2 else "wrong-password-guess"
                return await caller.post(
                    "/api/v1/auth/token",
                    data={"username": emails[n % len(emails)], "password": password},
                )

        responses = await asyncio.gather(*(attempt(n) for n in range(16)))

    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {200, 401, 503}, statuses
    refused = [response for response in responses if response.status_code == 503]
    assert refused, statuses
    for response in refused:
        assert_unavailable(response)
    assert len(refused) < len(responses), statuses


async def test_a_deadlock_the_database_breaks_is_an_outage_to_retry_not_a_bug(
    admin_engine: AsyncEngine,
) -> None:
    if admin_engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes its write lock at BEGIN: two writers queue, never deadlock")
    # Two transactions take the two built-in role rows in opposite orders;
    # PostgreSQL ends one of them with deadlock_detected.
    async with admin_engine.connect() as first, admin_engine.connect() as second:
        await first.execute(text("UPDATE roles SET name = name WHERE name = 'admin'"))
        await second.execute(text("UPDATE roles SET name = name WHERE name = 'member'"))
        crossed = await asyncio.gather(
            first.execute(text("UPDATE roles SET name = name WHERE name = 'member'")),
            second.execute(text("UPDATE roles SET name = name WHERE name = 'admin'")),
            return_exceptions=True,
        )
        await first.rollback()
        await second.rollback()

    [loser] = [answer for answer in crossed if isinstance(answer, BaseException)]
    assert isinstance(loser, DBAPIError), repr(loser)
    outage = database_outage(loser)
    assert outage is not None
    assert outage.reason == "contention"
    assert outage.retry_after_seconds >= 1
