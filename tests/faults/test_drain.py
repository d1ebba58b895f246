"""SIGTERM on a real server: it drains, finishes what is in flight, and exits cleanly.

A real `python -m app serve` (one worker, then two) takes a steady load over
kept-alive connections, the way a load balancer would send it, plus one
request whose body is still arriving. From SIGTERM, readiness must answer
503 while the load is still served (each answer telling its client to
reconnect), then the listener closes, the request in flight completes, and
the process exits by itself, with status 0, within its bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from tests.conftest import PASSWORD, free_port
from tests.helpers import app_environment

pytestmark = pytest.mark.faults

DRAIN_SECONDS = 3.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
# Bounds on waiting, so a hang fails instead of stalling the run; a loaded
# machine may take a while to import and start the app.
START_TIMEOUT_SECONDS = 90.0
# Beyond drain + timeout: closing pools, flushing, and the interpreter's exit.
EXIT_MARGIN_SECONDS = 10.0
LOAD_CLIENTS = 4
# How long after readiness turned 503 the load keeps coming: the time a load
# balancer takes to notice, well inside the drain.
LOAD_AFTER_NOT_READY_SECONDS = DRAIN_SECONDS / 3
PROBE_INTERVAL_SECONDS = 0.1


@dataclass
class Served:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def draining_since(self) -> list[float]:
        """When each worker began to drain, by its log line (wall-clock seconds)."""
        times = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "server.draining":
                    times.append(datetime.fromisoformat(record["timestamp"]).timestamp())
        return times


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `python -m app serve`, configured through the environment alone."""
    started: list[Served] = []

    def start(*, workers: int, drain: float, timeout: float, **extra: str) -> Served:
        port = free_port()
        env = {
            **app_environment(settings),
            "PATH": os.environ.get("PATH", ""),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKERS": str(workers),
            "LOG_FORMAT": "json",
            "MAIL_BACKEND": "memory",
            # The load is one user's; the default limit would refuse it.
            "RATE_LIMIT_DEFAULT": "100000/minute",
            "SHUTDOWN_DRAIN_SECONDS": str(drain),
            "SHUTDOWN_TIMEOUT_SECONDS": str(timeout),
        }
        if settings.redis_url:
            env["REDIS_URL"] = settings.redis_url
        env.update(extra)
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as output:
            # Started elsewhere than the checkout, so no `.env` is read.
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"],
                cwd=tmp_path,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        served = Served(port, process, log)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()


async def until_ready(served: Served) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=served.base_url, timeout=5) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/health/ready")).status_code == 200:
                    return
            if served.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{served.output()}")
            await asyncio.sleep(0.2)


async def sign_up(base_url: str) -> dict[str, str]:
    email = f"load-{uuid.uuid4().hex[:10]}@example.com"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        registered = await http.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        login = {"username": email, "password": PASSWORD}
        token = await http.post("/api/v1/auth/token", data=login)
        assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@dataclass
class Answer:
    started: float
    finished: float
    status: int
    closes: bool


@dataclass
class Traffic:
    """What a load balancer's traffic met: answers, and failures of any kind."""

    answers: list[Answer] = field(default_factory=list)
    readiness: list[tuple[float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    not_ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def flowing(self) -> None:
        """Until every client and the probe have had an answer."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while len(self.answers) < 2 * LOAD_CLIENTS or not self.readiness:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, "the load never got going"
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)

    async def user(self, base_url: str, headers: dict[str, str]) -> None:
        # One kept-alive connection per client, reopened when an answer says close.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    response = await http.get("/api/v1/users/me", headers=headers)
                except httpx.TransportError as exc:
                    self.failures.append(f"user: {type(exc).__name__}: {exc}")
                    return
                closes = response.headers.get("connection", "").lower() == "close"
                self.answers.append(Answer(started, time.monotonic(), response.status_code, closes))
                await asyncio.sleep(0.01)

    async def probe(self, base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    response = await http.get("/health/ready")
                except httpx.TransportError as exc:
                    self.failures.append(f"probe: {type(exc).__name__}: {exc}")
                    return
                self.readiness.append((time.monotonic(), response.status_code))
                if response.status_code == 503:
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.headers["Retry-After"]
                    self.not_ready.set()
                await asyncio.sleep(PROBE_INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def traffic(base_url: str, headers: dict[str, str]) -> AsyncIterator[Traffic]:
    seen = Traffic()
    tasks = [asyncio.create_task(seen.user(base_url, headers)) for _ in range(LOAD_CLIENTS)]
    tasks.append(asyncio.create_task(seen.probe(base_url)))
    try:
        yield seen
    finally:
        seen.stop.set()
        await asyncio.gather(*tasks)


class SlowRequest:
    """A registration whose body arrives in two parts: in flight for as long as the test likes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.body = json.dumps(
            {"email": f"slow-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD}
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def begin(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            "POST /api/v1/auth/register HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\n\r\n"
        ).encode()
        self._writer.write(head + self.body[:10])
        await self._writer.drain()

    async def finish(self) -> bytes:
        """Send the rest of the body; everything the server answers, up to its close."""
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(self.body[10:])
        await self._writer.drain()
        try:
            return await asyncio.wait_for(self._reader.read(), START_TIMEOUT_SECONDS)
        finally:
            self._writer.close()

    async def answer_so_far(self) -> bytes:
        """What has arrived without sending the rest; b"" when nothing (or the close)."""
        assert self._reader is not None
        assert self._writer is not None
        try:
            return await asyncio.wait_for(self._reader.read(), START_TIMEOUT_SECONDS)
        except ConnectionError:
            return b""
        finally:
            self._writer.close()


async def until_refused(port: int, bound: float) -> float:
    """When new connections stop being accepted: the listener has closed."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return time.monotonic()
        writer.close()
        await asyncio.sleep(0.05)
    pytest.fail(f"the listener was still open {bound} s after SIGTERM")


async def exit_status(served: Served, bound: float) -> int:
    try:
        return await asyncio.to_thread(served.process.wait, bound)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within {bound} s:\n{served.output()}")


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_serves_in_flight_requests_and_exits_cleanly(
    serve: Callable[..., Served], workers: int
) -> None:
    served = serve(workers=workers, drain=DRAIN_SECONDS, timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await until_ready(served)
    headers = await sign_up(served.base_url)
    slow = SlowRequest(served.port)
    await slow.begin()

    async with traffic(served.base_url, headers) as seen:
        await seen.flowing()
        signalled, signalled_wall = time.monotonic(), time.time()
        served.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(seen.not_ready.wait(), DRAIN_SECONDS)
        not_ready = time.monotonic()
        await asyncio.sleep(LOAD_AFTER_NOT_READY_SECONDS)
    closed = await until_refused(served.port, DRAIN_SECONDS + EXIT_MARGIN_SECONDS)
    slow_answer = await slow.finish()
    status = await exit_status(
        served, DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + EXIT_MARGIN_SECONDS
    )
    output = served.output()

    # Every request sent got its answer: no reset, no refusal, nothing cut.
    assert seen.failures == [], output
    assert all(answer.status == 200 for answer in seen.answers), output
    # Before SIGTERM connections were kept alive; once readiness said 503,
    # the load was still served, and every answer asked its client to reconnect.
    # Each worker drains on its own SIGTERM, forwarded one after the other: a
    # connection kept alive to one still serving is told to close once that
    # one drains too.
    assert not any(answer.closes for answer in seen.answers if answer.finished < signalled)
    draining = served.draining_since()
    assert len(draining) == workers, output
    all_draining = signalled + (max(draining) - signalled_wall)
    during_drain = [
        answer for answer in seen.answers if answer.started > max(not_ready, all_draining)
    ]
    assert during_drain, "no request was served while readiness answered 503"
    assert all(answer.closes for answer in during_drain)
    assert {code for at, code in seen.readiness if at < signalled} == {200}
    assert {code for at, code in seen.readiness if at >= not_ready} == {503}
    # The listener closed only once the drain was over, with a request still
    # in flight; that request then completed.
    assert closed - signalled >= DRAIN_SECONDS
    assert slow_answer.startswith(b"HTTP/1.1 201 "), slow_answer[:300]
    assert b"connection: close" in slow_answer.lower()
    assert status == 0, output


async def test_a_request_stuck_in_flight_gets_its_timeout_answer_before_the_server_exits(
    serve: Callable[..., Served],
) -> None:
    """SHUTDOWN_TIMEOUT_SECONDS >= REQUEST_TIMEOUT_SECONDS: the app answers, nothing is cut."""
    drain, request_timeout, timeout = 1.0, 2.0, 4.0
    served = serve(
        workers=1, drain=drain, timeout=timeout, REQUEST_TIMEOUT_SECONDS=str(request_timeout)
    )
    await until_ready(served)
    stuck = SlowRequest(served.port)
    await stuck.begin()

    served.process.send_signal(signal.SIGTERM)
    answer = await stuck.answer_so_far()
    status = await exit_status(served, drain + timeout + EXIT_MARGIN_SECONDS)

    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"application/problem+json" in answer
    assert status == 0, served.output()


async def test_a_request_past_the_shutdown_timeout_is_cut_and_the_server_still_exits(
    serve: Callable[..., Served],
) -> None:
    drain, timeout = 1.0, 2.0
    served = serve(workers=1, drain=drain, timeout=timeout)
    await until_ready(served)
    stuck = SlowRequest(served.port)
    await stuck.begin()

    served.process.send_signal(signal.SIGTERM)
    status = await exit_status(served, drain + timeout + EXIT_MARGIN_SECONDS)

    assert status == 0, served.output()


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_second_ctrl_c_stops_without_waiting_for_the_drain(
    serve: Callable[..., Served], workers: int
) -> None:
    long_drain = 10 * EXIT_MARGIN_SECONDS
    served = serve(workers=workers, drain=long_drain, timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await until_ready(served)

    served.process.send_signal(signal.SIGINT)
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        deadline = time.monotonic() + EXIT_MARGIN_SECONDS
        while (await http.get("/health/ready")).status_code != 503:
            assert time.monotonic() < deadline, "readiness never turned 503"
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
    served.process.send_signal(signal.SIGINT)

    await exit_status(served, EXIT_MARGIN_SECONDS)
