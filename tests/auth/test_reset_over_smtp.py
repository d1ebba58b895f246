"""The SMTP mail backend, end to end against a local SMTP server."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import client_for, free_port, register


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_reset_mail_goes_out_over_smtp_and_its_token_works(
    app_factory: Callable[..., FastAPI], smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    app = app_factory(
        mail_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        mail_from="Groundwork <noreply@example.com>",
        password_reset_url="https://app.example.com/reset?token={token}",
    )
    async with LifespanManager(app), client_for(app) as client:
        await register(client, "smtp@example.com")

        requested = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": "smtp@example.com"}
        )

        assert requested.status_code == 202
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
    app = app_factory(
        mail_backend="smtp", smtp_host="127.0.0.1", smtp_port=free_port(), smtp_starttls=False
    )
    async with LifespanManager(app), client_for(app) as client:
        await register(client, "nomail@example.com")

        response = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": "nomail@example.com"}
        )

    assert response.status_code == 202
