"""Logging in with a password, behind the login lockout."""

from __future__ import annotations

import uuid
from typing import NoReturn

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.auth.schemas import TokenPair
from app.auth.tokens import login_sessions_of, token_pair
from app.core.context import RequestContext
from app.core.errors import InvalidCredentials
from app.core.metrics import LOGINS
from app.core.ratelimit import client_key
from app.core.ratelimit.lockout import Attempt, LockedOut
from app.core.resources import Resources
from app.core.security.password_policy import MAX_LENGTH
from app.users.accounts import Accounts

log = structlog.get_logger(__name__)


class LoginService:
    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.context = context
        self.accounts = Accounts(session, resources, context)

    async def login(self, email: str, password: str) -> TokenPair:
        """Exchange credentials for tokens; every failure looks the same to the caller."""
        email = email.lower()
        # Counted before the password is checked: of any number of guesses at
        # once, only as many as the lockout allows reach the hasher.
        attempt = await self._count_attempt(email)
        hasher = self.resources.hasher
        # Credentials no account can have are not looked up: an over-long
        # password, or an email with a NUL (which PostgreSQL cannot compare).
        possible = len(password) <= MAX_LENGTH and "\x00" not in email
        user = await self.accounts.find_by_email(email) if possible else None
        if user is None:
            # Spend the time a real check would, so timing does not reveal
            # which emails have accounts.
            await hasher.burn(password[:MAX_LENGTH])
            await self._login_failed(None, "unknown_email")
        valid, new_hash = await hasher.verify(password, user.password_hash)
        if not valid:
            await self._login_failed(user.id, "bad_password")
        if not user.is_active:
            await self._login_failed(user.id, "inactive")
        if new_hash is not None:
            await self.accounts.rehash(user, new_hash)
        sessions = login_sessions_of(self.session, self.resources)
        issued = await sessions.start(user.id, self.resources.clock.now())
        self.accounts.audit.record(
            AuditAction.LOGIN_SUCCEEDED, actor_id=user.id, target_type="user", target_id=user.id
        )
        await self.session.commit()
        await self.resources.rate_limiter.lockout.succeeded(attempt)
        LOGINS.labels(outcome="success").inc()
        log.info("auth.login_succeeded", user_id=str(user.id))
        return token_pair(self.resources, issued)

    async def _count_attempt(self, email: str) -> Attempt:
        """Count the attempt against the account and the client; 429 once either is locked out."""
        try:
            return await self.resources.rate_limiter.lockout.attempt(
                email, client_key(self.context.ip)
            )
        except LockedOut:
            LOGINS.labels(outcome="locked_out").inc()
            log.warning("auth.login_locked_out")
            raise

    async def _login_failed(self, user_id: uuid.UUID | None, reason: str) -> NoReturn:
        # The attempt was counted before the check, and stays counted.
        # Recorded and committed even though the login fails.
        self.accounts.audit.record(
            AuditAction.LOGIN_FAILED,
            actor_id=None,
            target_type="user" if user_id else None,
            target_id=user_id,
            details={"reason": reason},
        )
        await self.session.commit()
        LOGINS.labels(outcome=reason).inc()
        log.info("auth.login_failed", user_id=str(user_id) if user_id else None, reason=reason)
        raise InvalidCredentials
