"""What a serving process does between its start and its first answer."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send
from uvicorn import Config

from app.cli import main
from app.core.config import Settings
from app.core.workers import DrainingServer
from tests.helpers import app_environment

ROOT = Path(__file__).resolve().parents[1]
STARTED_WITHIN_SECONDS = 30
# Not loaded before the first answer: passlib by the first password hash or
# check, the job loop by a process that works the outbox itself.
LEFT_FOR_LATER = ("passlib", "app.jobs.loop")
_START_UP = """
import asyncio, sys
from app.core.config import Settings
from app.main import create_app, open_resources

async def start(settings):
    async with open_resources(settings):
        pass

settings = Settings()
create_app(settings)
asyncio.run(start(settings))
print(" ".join(name for name in sys.argv[1:] if name in sys.modules))
"""


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The server under test freezes what this process holds and tunes its collector."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.enable()


@asynccontextmanager
async def _started(config: Config) -> AsyncIterator[int]:
    """A `DrainingServer` of `config` on a free port, once started; the port. Stopped on leaving."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = DrainingServer(config, drain_seconds=0)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(STARTED_WITHIN_SECONDS):
            while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, not an event
                await asyncio.sleep(0.01)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        listener.close()


async def test_the_app_is_loaded_and_started_without_collections_then_served_with_them(
    unfrozen: None,
) -> None:
    collecting: dict[str, bool] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while (await receive())["type"] != "lifespan.shutdown":
            collecting["lifespan"] = gc.isenabled()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    def create_app() -> object:
        collecting["load"] = gc.isenabled()
        return app

    async with _started(Config(create_app, factory=True, lifespan="on", log_config=None)):
        assert collecting == {"load": False, "lifespan": False}
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled()


# Requests in flight at once, and the objects each holds until all have arrived.
IN_FLIGHT = 24
HELD_PER_REQUEST = 200


async def test_requests_in_flight_do_not_set_off_collections(unfrozen: None) -> None:
    """What requests in flight hold is not garbage: walking it is wasted work."""
    arrived = 0
    all_arrived = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal arrived
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        held = [{"part": part} for part in range(HELD_PER_REQUEST)]
        arrived += 1
        if arrived == IN_FLIGHT:
            all_arrived.set()
        await all_arrived.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(held)})

    async def get(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    config = Config(app, lifespan="on", log_config=None, access_log=False)
    async with _started(config) as port:
        # From a clean count: only what the requests make and hold counts.
        gc.collect()
        gc.callbacks.append(count)
        try:
            async with asyncio.timeout(STARTED_WITHIN_SECONDS):
                answers = await asyncio.gather(*(get(port) for _ in range(IN_FLIGHT)))
        finally:
            gc.callbacks.remove(count)
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
    assert collections == []


def test_a_command_other_than_serve_runs_with_collections(
    unfrozen: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # As `python -m app` leaves it for the server's start-up.
    gc.disable()
    assert main(["new-secret-key"]) == 0
    assert gc.isenabled()


def test_start_up_leaves_what_only_some_requests_need_unloaded(settings: Settings) -> None:
    started = subprocess.run(
        [sys.executable, "-c", _START_UP, *LEFT_FOR_LATER],
        cwd=ROOT,
        env={**app_environment(settings), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert started.stdout.split() == []
