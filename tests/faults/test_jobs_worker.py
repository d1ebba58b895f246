"""A real `python -m app worker` on a private Redis: no job is lost, none runs twice.

The worker sends reset mail over SMTP to a server in this process, which
can refuse messages or hold one in the middle of its delivery. The test
writes the outbox rows itself, as a committed change would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy import select

from app.auth.password_reset import RESET_MAIL
from app.core.config import Settings
from app.core.context import SYSTEM_CONTEXT
from app.core.resources import Resources
from app.jobs.queue import QUEUE_NAME
from app.outbox.models import OutboxMessage
from app.outbox.writer import Outbox
from tests.conftest import AccountFactory, free_port
from tests.faults.conftest import PrivateRedis
from tests.helpers import SmtpServer, app_environment

pytestmark = pytest.mark.faults

START_TIMEOUT_SECONDS = 90.0
WAIT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
# Short, so a lost queue is rebuilt within the test's patience.
REQUEUE_AFTER_SECONDS = 2.0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def status(self, probe: str) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health/{probe}", timeout=2).status_code
        except httpx.TransportError:
            return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def start_worker(
    settings: Settings, smtp_server: tuple[SmtpServer, int], tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(redis_url: str, **extra: str) -> Worker:
        port = free_port()
        env = {
            **app_environment(settings),
            "PATH": os.environ.get("PATH", ""),
            "REDIS_URL": redis_url,
            "LOG_FORMAT": "json",
            "MAIL_BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_server[1]),
            "SMTP_STARTTLS": "false",
            "WORKER_PORT": str(port),
            "JOBS_POLL_SECONDS": "0.1",
            "JOBS_REQUEUE_AFTER_SECONDS": str(REQUEUE_AFTER_SECONDS),
            "JOBS_RETRY_BASE_SECONDS": "0.5",
            **extra,
        }
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "worker"],
                cwd=Path(__file__).resolve().parents[2],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(process, port, log)
        started.append(worker)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while worker.status("ready") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{worker.output()}")
            time.sleep(0.1)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            try:
                worker.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


async def until(condition: Callable[[], bool], what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            said = worker.output() if worker is not None else ""
            pytest.fail(f"timed out waiting for {what}\n{said}")
        await asyncio.sleep(POLL_SECONDS)


async def queue_resets(resources: Resources, emails: list[str]) -> None:
    async with resources.sessionmaker() as session:
        outbox = Outbox(session, SYSTEM_CONTEXT)
        for email in emails:
            outbox.add(RESET_MAIL, {"email": email})
        await session.commit()


async def jobs(resources: Resources) -> list[OutboxMessage]:
    """The reset-mail jobs (the worker's schedule writes jobs of its own)."""
    async with resources.sessionmaker() as session:
        return list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == RESET_MAIL))
        )


async def settled(resources: Resources, done: int, worker: Worker) -> list[OutboxMessage]:
    """The jobs once `done` of them are recorded done: the record follows the delivery."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        rows = await jobs(resources)
        if sum(row.status == "done" for row in rows) >= done:
            return rows
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {done} done jobs\n{worker.output()}")
        await asyncio.sleep(POLL_SECONDS)


async def accounts(make_account: AccountFactory, count: int) -> list[str]:
    return [(await make_account()).email for _ in range(count)]


async def in_redis(redis: PrivateRedis, *command: str) -> object:
    """One command on a fresh connection (a restart breaks the old ones)."""
    client = Redis.from_url(redis.url)
    try:
        answer: object = await client.execute_command(*command)  # type: ignore[no-untyped-call]
        return answer
    finally:
        await client.aclose()


async def test_mail_refused_while_smtp_is_down_is_delivered_once_it_is_back(
    start_worker: Callable[..., Worker],
    private_redis: PrivateRedis,
    smtp_server: tuple[SmtpServer, int],
    make_account: AccountFactory,
    resources: Resources,
) -> None:
    server, _ = smtp_server
    server.refusing = True
    [email] = await accounts(make_account, 1)
    worker = start_worker(private_redis.url)

    await queue_resets(resources, [email])
    await until(lambda: server.refused >= 2, "two refused attempts", worker)
    server.refusing = False
    await until(lambda: server.recipients == [email], "the delivery", worker)

    [job] = await settled(resources, 1, worker)
    assert job.attempts == server.refused + 1
    # What the worker reports of it, on its own port.
    assert worker.status("live") == 200
    async with httpx.AsyncClient(timeout=5) as http:
        scraped = (await http.get(f"http://127.0.0.1:{worker.port}/metrics")).text
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    kind = frozenset({("kind", RESET_MAIL)})
    assert samples[("jobs_total", kind | {("outcome", "retry")})] == server.refused
    assert samples[("jobs_total", kind | {("outcome", "done")})] == 1
    assert samples[("job_duration_seconds_count", kind)] == server.refused + 1
    for gauge in ("jobs_pending", "jobs_oldest_pending_age_seconds", "jobs_dead"):
        assert (gauge, frozenset()) in samples
    assert samples[("worker_heartbeat_timestamp_seconds", frozenset())] > time.time() - 60


async def hold_the_first_delivery(
    worker: Worker, server: SmtpServer, resources: Resources, emails: list[str]
) -> Worker:
    """Queue a reset per email; the worker's first delivery is held at the SMTP server.

    With JOBS_CONCURRENCY=1 the rest wait in Redis meanwhile.
    """
    server.gate.clear()
    await queue_resets(resources, emails)
    await until(server.holding.is_set, "the first delivery to begin", worker)
    return worker


@pytest.mark.parametrize("loss", ["flush", "restart"])
async def test_a_redis_that_loses_its_queue_mid_run_loses_no_job(
    start_worker: Callable[..., Worker],
    private_redis: PrivateRedis,
    smtp_server: tuple[SmtpServer, int],
    make_account: AccountFactory,
    resources: Resources,
    loss: str,
) -> None:
    server, _ = smtp_server
    emails = await accounts(make_account, 6)
    worker = await hold_the_first_delivery(
        start_worker(private_redis.url, JOBS_CONCURRENCY="1"), server, resources, emails
    )
    assert await in_redis(private_redis, "LLEN", QUEUE_NAME) >= 1  # type: ignore[operator]

    if loss == "flush":
        await in_redis(private_redis, "FLUSHALL")
    else:
        await private_redis.kill()
        await private_redis.start()
    assert await in_redis(private_redis, "LLEN", QUEUE_NAME) == 0
    server.gate.set()

    await until(lambda: len(server.recipients) == len(emails), "every delivery", worker)
    assert Counter(server.recipients) == Counter(emails)
    assert {job.status for job in await settled(resources, len(emails), worker)} == {"done"}


async def test_two_workers_deliver_each_row_once(
    start_worker: Callable[..., Worker],
    private_redis: PrivateRedis,
    smtp_server: tuple[SmtpServer, int],
    make_account: AccountFactory,
    resources: Resources,
) -> None:
    server, _ = smtp_server
    emails = await accounts(make_account, 20)
    first = start_worker(private_redis.url, JOBS_BATCH_SIZE="3")
    start_worker(private_redis.url, JOBS_BATCH_SIZE="3")

    await queue_resets(resources, emails)
    await until(lambda: len(server.recipients) >= len(emails), "every delivery", first)

    rows = await settled(resources, len(emails), first)
    # Long enough for a duplicate to show: past the requeue delay.
    await asyncio.sleep(REQUEUE_AFTER_SECONDS + 1)
    assert Counter(server.recipients) == Counter(emails)
    assert {row.attempts for row in rows} == {1}


async def test_sigterm_finishes_the_job_in_hand_and_takes_no_new_one(
    start_worker: Callable[..., Worker],
    private_redis: PrivateRedis,
    smtp_server: tuple[SmtpServer, int],
    make_account: AccountFactory,
    resources: Resources,
) -> None:
    server, _ = smtp_server
    emails = await accounts(make_account, 4)
    worker = await hold_the_first_delivery(
        start_worker(private_redis.url, JOBS_CONCURRENCY="1"), server, resources, emails
    )

    worker.process.send_signal(signal.SIGTERM)
    await until(lambda: worker.status("ready") == 503, "readiness to turn 503", worker)
    assert worker.process.poll() is None
    server.gate.set()
    code = await asyncio.to_thread(worker.process.wait, STOP_TIMEOUT_SECONDS)

    assert code == 0, worker.output()
    assert len(server.recipients) == 1
    rows = await jobs(resources)
    assert Counter(row.status for row in rows) == {"done": 1, "pending": 3}
    assert {row.attempts for row in rows if row.status == "pending"} == {0}
