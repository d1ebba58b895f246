"""A request's database session ends with the request: its connection goes back rolled back.

However the request ends (an answer, an error, the request timeout), the
connection it used returns to the pool with no transaction open, and it is
returned, not thrown away: a timeout that fires while the session is closing
does not cut the rollback short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from sqlalchemy import event, text
from sqlalchemy.pool import Pool
from sqlalchemy.util import await_
from starlette.types import Message, Receive, Scope, Send

from app.core.resources import Resources
from app.web.deps import SessionDep, request_session
from tests.conftest import client_for

HANG_GUARD_SECONDS = 10


def _resources(application: FastAPI) -> Resources:
    resources = application.state.resources
    assert isinstance(resources, Resources)
    return resources


def _count_invalidations(pool: Pool) -> list[object]:
    invalidated: list[object] = []

    @event.listens_for(pool, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, _record: Any, exception: object) -> None:
        invalidated.append(exception)

    return invalidated


async def test_a_failed_request_returns_its_connection_rolled_back(
    app_factory: Callable[..., FastAPI],
) -> None:
    application = app_factory()

    @application.get("/session-check/fails")
    async def fails(session: SessionDep) -> None:
        await session.execute(text("SELECT 1"))
        assert session.in_transaction()
        raise RuntimeError("the use case failed")

    async with LifespanManager(application), client_for(application) as http:
        pool = _resources(application).engine.pool
        response = await http.get("/session-check/fails")
        assert response.status_code == 500
        assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_timeout_during_the_close_does_not_cut_the_rollback_short(
    app_factory: Callable[..., FastAPI],
) -> None:
    # The request's work is done within its deadline; its rollback outlasts
    # it, so the request timeout cancels the request while the session closes.
    application = app_factory(request_timeout_seconds=0.2)
    rolled_back: list[bool] = []

    @application.get("/session-check/slow-close")
    async def slow_close(session: SessionDep) -> str:
        await session.execute(text("SELECT 1"))
        return "done"

    async with (
        LifespanManager(application),
        client_for(application) as http,
        asyncio.timeout(HANG_GUARD_SECONDS),
    ):
        engine = _resources(application).engine
        invalidated = _count_invalidations(engine.pool)

        @event.listens_for(engine.sync_engine, "rollback")
        def _slow_rollback(_connection: Any) -> None:
            await_(asyncio.sleep(0.5))
            rolled_back.append(True)

        response = await http.get("/session-check/slow-close")
        event.remove(engine.sync_engine, "rollback", _slow_rollback)

        assert response.status_code in (200, 504)
        assert rolled_back == [True]
        assert invalidated == []
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_everything_a_request_does_shares_one_session(
    app_factory: Callable[..., FastAPI],
) -> None:
    # Dependencies that take the `Request` read the session from it; one
    # that declares `SessionDep` must get that same session, so a use case
    # and the principal's check see one transaction.
    application = app_factory()

    @application.get("/session-check/shared")
    async def shared(session: SessionDep, request: Request) -> bool:
        return session is request_session(request) is request_session(request)

    async with LifespanManager(application), client_for(application) as http:
        response = await http.get("/session-check/shared")
        assert response.json() is True


async def test_the_connection_is_back_in_the_pool_before_the_answer_is_sent(
    app_factory: Callable[..., FastAPI],
) -> None:
    # A client reading its answer slowly must not hold a database connection
    # while it does: the pool would run dry on slow readers.
    application = app_factory()
    checked_out_when_sent: list[int] = []

    @application.get("/session-check/answered")
    async def answered(session: SessionDep) -> str:
        await session.execute(text("SELECT 1"))
        return "done"

    async with LifespanManager(application):
        pool = _resources(application).engine.pool

        async def watched(scope: Scope, receive: Receive, send: Send) -> None:
            async def watching(message: Message) -> None:
                if message["type"] == "http.response.start":
                    checked_out_when_sent.append(pool.checkedout())  # type: ignore[attr-defined]
                await send(message)

            await application(scope, receive, watching)

        async with client_for(watched) as http:
            response = await http.get("/session-check/answered")
    assert response.status_code == 200
    assert checked_out_when_sent == [0]
