"""Routes with a fixed answer (app/api/fixed_answers.py): rendered once, then sent as they are."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.fixed_answers import fixed_answer, serve_fixed_answers
from app.core.errors import ServiceUnavailable, install_error_handlers
from tests.conftest import client_for


class Status(BaseModel):
    status: str = "ok"


class Stamp:
    """A layer above the routes that adds a header of its own to each answer, as the edge does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.count += 1
        number = str(self.count).encode()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-stamp", number)]
            await send(message)

        await self.app(scope, receive, stamped)


def counting_app(*, failures: int = 0) -> tuple[FastAPI, list[int]]:
    """An app whose fixed route counts its calls and fails the first `failures` of them."""
    calls: list[int] = []
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fixed")
    @fixed_answer
    async def fixed() -> Status:
        calls.append(1)
        if len(calls) <= failures:
            raise ServiceUnavailable("not yet")
        return Status()

    serve_fixed_answers(app)
    app.add_middleware(Stamp)
    return app, calls


async def test_the_endpoint_runs_once_and_every_answer_is_the_same() -> None:
    app, calls = counting_app()
    async with client_for(app) as http:
        answers = [await http.get("/fixed") for _ in range(3)]

    assert len(calls) == 1
    for answer in answers:
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok"}
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["content-length"] == str(len(answer.content))
    # The layers above still see each request, and add to a fresh answer each time.
    assert [answer.headers.get_list("x-stamp") for answer in answers] == [["1"], ["2"], ["3"]]


async def test_an_answer_other_than_success_is_not_kept() -> None:
    app, calls = counting_app(failures=2)
    async with client_for(app) as http:
        statuses = [(await http.get("/fixed")).status_code for _ in range(4)]

    assert statuses == [503, 503, 200, 200]
    assert len(calls) == 3


async def test_an_endpoint_that_reads_the_request_cannot_be_marked() -> None:
    app = FastAPI()

    @app.get("/echo")
    @fixed_answer
    async def echo(word: str) -> str:
        return word

    with pytest.raises(TypeError, match="/echo"):
        serve_fixed_answers(app)


async def test_a_route_with_dependencies_cannot_be_marked() -> None:
    async def check() -> None:
        return None

    app = FastAPI()

    @app.get("/guarded", dependencies=[Depends(check)])
    @fixed_answer
    async def guarded() -> Status:
        return Status()

    with pytest.raises(TypeError, match="/guarded"):
        serve_fixed_answers(app)


async def test_liveness_answers_each_probe_as_its_own_request(client: httpx.AsyncClient) -> None:
    probes = [await client.get("/health/live") for _ in range(3)]

    assert [probe.json() for probe in probes] == [{"status": "ok"}] * 3
    request_ids = [probe.headers.get_list("X-Request-ID") for probe in probes]
    assert all(len(ids) == 1 for ids in request_ids)
    assert len({ids[0] for ids in request_ids}) == 3
    assert all(probe.headers["X-Content-Type-Options"] == "nosniff" for probe in probes)
