"""Resetting a forgotten password: a single-use token by mail, then a new password."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.auth.schemas import PasswordResetConfirm
from app.core.context import RequestContext
from app.core.errors import InvalidToken
from app.core.mail import Mail
from app.core.resources import Resources
from app.core.security.opaque import digest, new_secret
from app.core.security.password_policy import ensure_new_password
from app.identity.models import PasswordResetToken
from app.identity.repository import ResetTokenRepository
from app.outbox.job import Job
from app.outbox.writer import Outbox
from app.users.accounts import Accounts

log = structlog.get_logger(__name__)

_BAD_RESET = "The reset token is invalid, used or expired."
# The outbox job that mails a reset token: its payload is {"email": ...}.
RESET_MAIL = "auth.password_reset_mail"


class PasswordResetService:
    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.settings = resources.settings
        self.accounts = Accounts(session, resources, context)
        self.reset_tokens = ResetTokenRepository(session)
        self.outbox = Outbox(session, context)

    async def request(self, email: str) -> None:
        """Queue the reset mail; the caller answers 202 whatever the email.

        Known and unknown emails write the same outbox row and nothing else,
        so neither the answer nor its timing tells whether an account exists.
        The token is made when the mail is sent, so no secret waits in the outbox.
        """
        self.outbox.add(RESET_MAIL, {"email": email}, now=self.resources.clock.now())
        await self.session.commit()
        log.info("auth.password_reset_requested")

    async def send(self, email: str) -> None:
        """Mint a token and mail it, if the email has an active account; else nothing.

        The token is committed before the mail leaves, so the link works when
        it arrives; a failed send leaves an unused token that expires, and the
        job's retry mints a new one.
        """
        user = await self.accounts.get_active_by_email(email)
        if user is None:
            log.info("auth.password_reset_mail_skipped", reason="no_active_account")
            return
        token, token_digest = new_secret()
        now = self.resources.clock.now()
        await self.reset_tokens.add(
            PasswordResetToken(
                user_id=user.id,
                token_digest=token_digest,
                created_at=now,
                expires_at=now + timedelta(seconds=self.settings.password_reset_ttl_seconds),
            )
        )
        self.accounts.audit.record(
            AuditAction.PASSWORD_RESET_REQUESTED,
            actor_id=None,
            target_type="user",
            target_id=user.id,
        )
        await self.session.commit()
        await self.resources.mailer.send(self._mail(user.email, token))
        log.info("auth.password_reset_mail_sent", user_id=str(user.id))

    def _mail(self, to: str, token: str) -> Mail:
        minutes = self.settings.password_reset_ttl_seconds // 60
        template = self.settings.password_reset_url
        where = template.replace("{token}", token) if template else f"Reset token: {token}"
        return Mail(
            to=to,
            subject="Reset your password",
            body=(
                "Someone asked to reset the password of this account.\n\n"
                f"{where}\n\n"
                f"It works once, for {minutes} minutes. If it was not you, ignore this message."
            ),
        )

    async def confirm(self, data: PasswordResetConfirm) -> None:
        now = self.resources.clock.now()
        reset = await self.reset_tokens.get(digest(data.token))
        if reset is None or reset.used_at is not None or reset.expires_at <= now:
            raise InvalidToken(_BAD_RESET)
        user = await self.accounts.get_active(reset.user_id)
        if user is None:
            raise InvalidToken(_BAD_RESET)
        ensure_new_password(data.new_password, email=user.email)
        # The token is spent together with every other token of the account,
        # after the user row is written, as any password change does: the same
        # lock order means two confirmations cannot deadlock, and the one that
        # waits finds its token spent. Raising here rolls the new hash back.
        spent = await self.accounts.replace_password(
            user,
            await self.resources.hasher.hash(data.new_password),
            now,
            reason="password_reset",
        )
        if reset.id not in spent:
            raise InvalidToken(_BAD_RESET)
        self.accounts.audit.record(
            AuditAction.PASSWORD_RESET, actor_id=user.id, target_type="user", target_id=user.id
        )
        await self.session.commit()


async def send_reset_mail(resources: Resources, job: Job) -> None:
    """The RESET_MAIL job: the mail goes out under the requesting request's context."""
    async with resources.sessionmaker() as session:
        await PasswordResetService(session, resources, job.context).send(job.payload["email"])
