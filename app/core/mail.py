"""Outgoing mail behind one small interface: console, SMTP, or an in-memory outbox."""

from __future__ import annotations

import asyncio
import json
import smtplib
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

from app.core.config import Settings


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


class ConsoleMailer:
    """Development: print the message to the server's output, where a developer looks.

    Printed, not logged: the message exists to hand the developer its token,
    which the log redaction would blank out, and a log pipeline should not
    receive it. With JSON logs it is one JSON object on one line, so the
    output stays JSON lines. In production it prints only that a message
    was dropped.
    """

    def __init__(self, *, show_body: bool, json_lines: bool = False) -> None:
        self._show_body = show_body
        self._json_lines = json_lines

    async def send(self, mail: Mail) -> None:
        # Flushed at once: a buffered stdout (a container's) would hold the
        # message back from the developer waiting for it.
        print(self._render(mail), file=sys.stdout, flush=True)

    def _render(self, mail: Mail) -> str:
        if self._json_lines:
            fields: dict[str, str] = {
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "level": "info",
                "event": "mail.printed" if self._show_body else "mail.dropped",
                "subject": mail.subject,
            }
            if self._show_body:
                fields.update(to=mail.to, body=mail.body)
            return json.dumps(fields)
        if self._show_body:
            return f"--- mail to {mail.to}: {mail.subject}\n{mail.body}\n---"
        return f"--- mail dropped (MAIL_BACKEND=console): {mail.subject}"


@dataclass
class MemoryMailer:
    """An outbox for tests: keeps what would have gone out."""

    outbox: list[Mail] = field(default_factory=list)

    async def send(self, mail: Mail) -> None:
        self.outbox.append(mail)


class SmtpMailer:
    """SMTP through the standard library, in a worker thread so the loop never waits."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, mail: Mail) -> None:
        await asyncio.to_thread(self._send_blocking, mail)

    def _send_blocking(self, mail: Mail) -> None:
        s = self._settings
        message = EmailMessage()
        message["From"] = s.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username and s.smtp_password is not None:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(message)


def create_mailer(settings: Settings) -> Mailer:
    if settings.mail_backend == "smtp":
        return SmtpMailer(settings)
    if settings.mail_backend == "memory":
        return MemoryMailer()
    return ConsoleMailer(
        show_body=not settings.is_production,
        json_lines=settings.effective_log_format == "json",
    )
