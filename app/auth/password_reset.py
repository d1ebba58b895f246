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
from app.users.accounts import Accounts

log = structlog.get_logger(__name__)

_BAD_RESET = "The reset token is invalid, used or expired."


class PasswordResetService:
    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.settings = resources.settings
        self.accounts = Accounts(session, resources, context)
        self.reset_tokens = ResetTokenRepository(session)

    async def request(self, email: str) -> Mail | None:
        """The reset mail to send, if the account exists; the caller answers 202 either way."""
        # The token is made whether or not the account exists, so both paths
        # do the same work before the database is asked.
        token, token_digest = new_secret()
        now = self.resources.clock.now()
        user = await self.accounts.get_active_by_email(email)
        if user is None:
            log.info("auth.password_reset_requested", known=False)
            return None
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
        log.info("auth.password_reset_requested", known=True, user_id=str(user.id))
        return self._mail(user.email, token)

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
