"""The SMTP mail backend, end to end against a local SMTP server."""

from __future__ import annotations

import re
from collections.abc import Callable

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select

from app.jobs.registry import HANDLERS
from app.jobs.runner import JobRunner
from app.outbox.models import OutboxMessage
from tests.conftest import client_for, free_port, register, run_jobs
from tests.helpers import SettableClock, SmtpServer


def smtp_app(app_factory: Callable[..., FastAPI], port: int, **settings: object) -> FastAPI:
    """An app sending its mail to the SMTP server on `port`, in plain text on loopback."""
    return app_factory(
        mail_backend="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, **settings
    )


async def test_reset_mail_goes_out_over_smtp_and_its_token_works(
    app_factory: Callable[..., FastAPI], smtp_server: tuple[SmtpServer, int]
) -> None:
    inbox, port = smtp_server
    app = smtp_app(
        app_factory,
        port,
        mail_from="Groundwork <noreply@example.com>",
        password_reset_url="https://app.example.com/reset?token={token}",
    )
    async with LifespanManager(app), client_for(app) as client:
        await register(client, "smtp@example.com")

        requested = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": "smtp@example.com"}
        )

        assert requested.status_code == 202
        assert await run_jobs(app.state.resources) == 1
        assert len(inbox.messages) == 1
        message = inbox.messages[0]
        assert message["To"] == "smtp@example.com"
        assert message["From"] == "Groundwork <noreply@example.com>"
        body = message.get_payload(decode=True)
        assert isinstance(body, bytes)
        match = re.search(r"https://app\.example\.com/reset\?token=(\S+)", body.decode())
        assert match
        confirmed = await client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": match.group(1), "new_password": "fresh-and-long-enough"},
        )
        assert confirmed.status_code == 204


async def test_an_unreachable_smtp_server_does_not_fail_the_request(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = smtp_app(app_factory, free_port())
    async with LifespanManager(app), client_for(app) as client:
        await register(client, "nomail@example.com")

        response = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": "nomail@example.com"}
        )

    assert response.status_code == 202


async def test_reset_mail_refused_while_smtp_is_down_is_retried_and_delivered_once_it_is_back(
    app_factory: Callable[..., FastAPI], smtp_server: tuple[SmtpServer, int]
) -> None:
    inbox, port = smtp_server
    inbox.refusing = True
    app = smtp_app(
        app_factory,
        port,
        jobs_retry_base_seconds=60,
        jobs_max_attempts=5,
    )
    async with LifespanManager(app), client_for(app) as client:
        await register(client, "outage@example.com")
        requested = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": "outage@example.com"}
        )
        assert requested.status_code == 202
        clock = SettableClock()
        clock.stop()
        runner = JobRunner(app.state.resources, HANDLERS, clock=clock.now)

        assert await runner.run_due() == 1
        assert (inbox.refused, inbox.messages) == (1, [])
        # Not again before the backoff: 60 s after the first failure, then 120 s.
        assert await runner.run_due() == 0
        clock.advance(60)
        assert await runner.run_due() == 1
        assert inbox.refused == 2
        inbox.refusing = False
        clock.advance(119)
        assert await runner.run_due() == 0
        clock.advance(1)
        assert await runner.run_due() == 1
        # Done is done: later passes send nothing more.
        clock.advance(3600)
        assert await runner.run_due() == 0

        assert len(inbox.messages) == 1
        body = inbox.messages[0].get_payload(decode=True)
        assert isinstance(body, bytes)
        match = re.search(r"Reset token: (\S+)", body.decode())
        assert match
        confirmed = await client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": match.group(1), "new_password": "fresh-and-long-enough"},
        )
        assert confirmed.status_code == 204
        async with app.state.resources.sessionmaker() as session:
            [job] = await session.scalars(select(OutboxMessage))
        assert (job.status, job.attempts) == ("done", 3)


async def test_a_mail_refused_at_every_attempt_ends_dead_and_is_not_tried_again(
    app_factory: Callable[..., FastAPI], smtp_server: tuple[SmtpServer, int]
) -> None:
    inbox, port = smtp_server
    inbox.refusing = True
    app = smtp_app(
        app_factory,
        port,
        jobs_retry_base_seconds=1,
        jobs_max_attempts=2,
    )
    async with LifespanManager(app), client_for(app) as client:
        await register(client, "dead@example.com")
        await client.post("/api/v1/auth/password-reset/request", json={"email": "dead@example.com"})
        clock = SettableClock()
        clock.stop()
        runner = JobRunner(app.state.resources, HANDLERS, clock=clock.now)
        assert await runner.run_due() == 1
        clock.advance(1)
        assert await runner.run_due() == 1
        clock.advance(86_400)
        assert await runner.run_due() == 0
        stats = await runner.refresh_stats()
        async with app.state.resources.sessionmaker() as session:
            [job] = await session.scalars(select(OutboxMessage))

    assert inbox.refused == 2
    assert (job.status, job.attempts, job.last_error) == ("dead", 2, "SMTPDataError")
    assert (stats.pending, stats.dead) == (0, 1)
