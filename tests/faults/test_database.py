"""A PostgreSQL of the test's own, stopped, crashed and closed under load.

While it is gone, API routes answer 503 with Retry-After and nothing else;
once it is back the same app serves again, without a restart, and every
create that was answered 201 is in the database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from app.core.config import Settings
from app.core.errors import problem_type
from app.core.resources import Resources
from app.db.engine import create_engine, create_sessionmaker
from app.main import create_app
from tests.conftest import client_for, login, make_settings, register
from tests.faults.conftest import PrivatePostgres

pytestmark = pytest.mark.faults

ITEMS = "/api/v1/items"
WORKERS = 4
POOL_SIZE = 4
OUTAGE_SECONDS = 2.0
# After the database is back: how long the load goes on, and the tail of it
# in which every request must succeed.
AFTERMATH_SECONDS = 3.0
SETTLED_SECONDS = 1.0
# No request may hang: the whole of a test ends within this, or fails.
DEADLINE_SECONDS = 90


@dataclass(frozen=True, slots=True)
class Answer:
    started: float
    method: str
    status: int
    retry_after: str | None
    problem: str | None
    item_id: str | None


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)

    def record(self, started: float, response: httpx.Response) -> None:
        problem = item_id = None
        if response.headers.get("content-type") == "application/problem+json":
            problem = response.json()["type"]
        elif response.status_code == 201:
            item_id = response.json()["id"]
        self.answers.append(
            Answer(
                started,
                response.request.method,
                response.status_code,
                response.headers.get("Retry-After"),
                problem,
                item_id,
            )
        )

    def created(self) -> set[str]:
        return {answer.item_id for answer in self.answers if answer.item_id is not None}

    def refusals(self, *, after: float = 0.0) -> list[Answer]:
        return [a for a in self.answers if a.started >= after and a.status >= 300]


def settings_for(server: PrivatePostgres, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "db_pool_size": POOL_SIZE,
        "db_max_overflow": 0,
        "db_pool_timeout_seconds": 2.0,
        "db_connect_timeout_seconds": 2.0,
        "rate_limit_default": "100000/minute",
        **overrides,
    }
    return make_settings(server.url, **values)


@asynccontextmanager
async def serving(
    server: PrivatePostgres, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, Resources, dict[str, str]]]:
    application = create_app(settings_for(server, **overrides))
    async with LifespanManager(application), client_for(application) as http:
        resources = application.state.resources
        assert isinstance(resources, Resources)
        email = f"load-{uuid.uuid4().hex[:8]}@example.com"
        await register(http, email)
        headers = {"Authorization": f"Bearer {await login(http, email)}"}
        yield http, resources, headers


async def run_load(
    http: httpx.AsyncClient, headers: dict[str, str], load: Load, stop: asyncio.Event
) -> None:
    async def worker(number: int) -> None:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            started = time.monotonic()
            title = f"worker {number} item {sequence}"
            load.record(started, await http.post(ITEMS, json={"title": title}, headers=headers))
            started = time.monotonic()
            load.record(started, await http.get(ITEMS, headers=headers))
            await asyncio.sleep(0.01)

    await asyncio.gather(*(worker(number) for number in range(WORKERS)))


async def stored_item_ids(server: PrivatePostgres) -> set[str]:
    engine = create_engine(settings_for(server))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT id FROM items"))
            return {str(row[0]) for row in rows}
    finally:
        await engine.dispose()


def assert_only_unavailable(refused: list[Answer]) -> None:
    for answer in refused:
        assert answer.status == 503, answer
        assert answer.problem == problem_type("service-unavailable"), answer
        assert answer.retry_after is not None, answer
        assert int(answer.retry_after) >= 1, answer


def outage(server: PrivatePostgres, kind: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """How to take the database away, and how to bring it back."""
    if kind == "closed":
        return server.close_database, server.open_database
    mode = "immediate" if kind == "crash" else "fast"
    return (lambda: server.stop(mode)), server.start


async def in_thread(step: Callable[[], None]) -> None:
    # pg_ctl blocks; the app keeps serving on the loop meanwhile.
    await asyncio.to_thread(step)


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre-ping", "no-pre-ping"])
@pytest.mark.parametrize("kind", ["restart", "crash", "closed"])
async def test_an_outage_under_load_answers_only_503_and_recovers_without_a_restart(
    private_postgres: PrivatePostgres, kind: str, pre_ping: bool
) -> None:
    take_away, bring_back = outage(private_postgres, kind)
    load, stop = Load(), asyncio.Event()
    async with (
        asyncio.timeout(DEADLINE_SECONDS),
        serving(private_postgres, db_pool_pre_ping=pre_ping) as (http, _, headers),
    ):
        traffic = asyncio.create_task(run_load(http, headers, load, stop))
        try:
            await asyncio.sleep(0.5)
            await in_thread(take_away)
            await asyncio.sleep(OUTAGE_SECONDS)
            await in_thread(bring_back)
            back_at = time.monotonic()
            await asyncio.sleep(AFTERMATH_SECONDS)
        finally:
            stop.set()
            await traffic
        ready = await http.get("/health/ready")

    refused = load.refusals()
    assert refused, "the outage was never noticed: the test did not test anything"
    assert_only_unavailable(refused)
    # Each pooled connection may fail once after the restart; then none.
    assert len(load.refusals(after=back_at)) <= POOL_SIZE, load.refusals(after=back_at)
    assert load.refusals(after=back_at + AFTERMATH_SECONDS - SETTLED_SECONDS) == []
    assert ready.status_code == 200, ready.text
    acknowledged = load.created()
    assert acknowledged
    assert acknowledged <= await stored_item_ids(private_postgres)


@pytest.mark.parametrize(("pre_ping", "most_refused"), [(True, 0), (False, 1)])
async def test_connections_a_restart_killed_are_replaced_without_pre_ping(
    private_postgres: PrivatePostgres, pre_ping: bool, most_refused: int
) -> None:
    async with (
        asyncio.timeout(DEADLINE_SECONDS),
        serving(private_postgres, db_pool_pre_ping=pre_ping) as (http, resources, headers),
    ):
        # Fill the pool with connections that the restart will kill.
        warm = await asyncio.gather(*(http.get(ITEMS, headers=headers) for _ in range(POOL_SIZE)))
        assert {response.status_code for response in warm} == {200}
        assert resources.engine.pool.checkedin() == POOL_SIZE  # type: ignore[attr-defined]
        await in_thread(lambda: private_postgres.stop("fast"))
        await in_thread(private_postgres.start)

        answers = [await http.get(ITEMS, headers=headers) for _ in range(POOL_SIZE + 2)]

    statuses = [response.status_code for response in answers]
    refused = [response for response in answers if response.status_code != 200]
    # One disconnect marks the whole pool stale: not one 503 per dead connection.
    assert len(refused) <= most_refused, statuses
    for response in refused:
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
    assert statuses[-1] == 200


async def test_an_exhausted_pool_answers_503_under_load_and_recovers(
    private_postgres: PrivatePostgres,
) -> None:
    tiny_pool = {"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 0.3}
    load, stop = Load(), asyncio.Event()
    async with (
        asyncio.timeout(DEADLINE_SECONDS),
        serving(private_postgres, **tiny_pool) as (http, resources, headers),
    ):
        traffic = None
        try:
            # A slow query holds the only connection while the load begins.
            async with resources.engine.connect() as held:
                traffic = asyncio.create_task(run_load(http, headers, load, stop))
                await held.execute(text("SELECT pg_sleep(1.5)"))
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            if traffic is not None:
                await traffic
        # Four callers on one connection may keep missing it; one alone never does.
        after = [await http.get(ITEMS, headers=headers) for _ in range(3)]

    refused = load.refusals()
    assert refused, "the pool never ran dry: the test did not test anything"
    assert_only_unavailable(refused)
    assert [response.status_code for response in after] == [200, 200, 200]
    assert load.created() <= await stored_item_ids(private_postgres)


@pytest.mark.parametrize("pause", [0.0, 0.2], ids=["at-once", "noticed"])
async def test_closing_a_session_whose_connection_the_server_ended_is_not_an_error(
    private_postgres: PrivatePostgres, pause: float
) -> None:
    """A request's reads are done and answered; its session ends on a dead connection."""
    engine = create_engine(settings_for(private_postgres, db_pool_pre_ping=False))
    sessionmaker = create_sessionmaker(engine)
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            session = sessionmaker()
            assert await session.scalar(text("SELECT 1")) == 1
            await in_thread(private_postgres.end_sessions)
            await asyncio.sleep(pause)
            await session.close()
            async with sessionmaker() as fresh:
                assert await fresh.scalar(text("SELECT 2")) == 2
    finally:
        await engine.dispose()
