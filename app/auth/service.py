"""Logging in and out, refreshing, resetting a password, and reading a bearer token."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import NoReturn

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.audit.service import AuditService
from app.auth.models import PasswordResetToken
from app.auth.repository import AuthRepository
from app.auth.schemas import PasswordResetConfirm, TokenPair
from app.auth.sessions import IssuedRefresh, Rotation, SessionService
from app.core.authz import Principal
from app.core.context import RequestContext
from app.core.errors import (
    Forbidden,
    InvalidCredentials,
    InvalidToken,
    Unauthorized,
)
from app.core.mail import Mail
from app.core.metrics import LOGINS, REFRESH_REUSE
from app.core.ratelimit import client_key
from app.core.ratelimit.lockout import Attempt, LockedOut
from app.core.resources import Resources
from app.core.security.opaque import digest, new_secret
from app.core.security.password_policy import MAX_LENGTH, ensure_new_password
from app.core.security.tokens import InvalidAccessToken
from app.db.types import utcnow
from app.rbac.service import RbacService
from app.users.schemas import UserCreate, UserRead
from app.users.service import UserService

log = structlog.get_logger(__name__)

_BAD_TOKEN = "The access token is invalid, expired or revoked."
_BAD_REFRESH = "The refresh token is invalid, expired or revoked."
_BAD_RESET = "The reset token is invalid, used or expired."


class AuthService:
    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.context = context
        self.settings = resources.settings
        self.users = UserService(session, resources, context)
        self.rbac = RbacService(session, context)
        self.audit = AuditService(session, context)
        self.sessions = SessionService(
            session, refresh_ttl_seconds=self.settings.refresh_token_ttl_seconds
        )
        self.reset_tokens = AuthRepository(session)

    async def register(self, data: UserCreate) -> UserRead:
        if not self.settings.open_registration:
            raise Forbidden("Registration is closed; ask an administrator for an account.")
        return await self.users.register(data)

    # --- log in, refresh, log out --------------------------------------------------

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
        user = await self.users.find_by_email(email) if possible else None
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
            # An outdated hash (bcrypt from an import, or weaker parameters).
            await self.users.set_password_hash(user, new_hash)
        issued = await self.sessions.start(user.id, utcnow())
        self.audit.record(
            AuditAction.LOGIN_SUCCEEDED, actor_id=user.id, target_type="user", target_id=user.id
        )
        await self.session.commit()
        await self.resources.rate_limiter.lockout.succeeded(attempt)
        LOGINS.labels(outcome="success").inc()
        log.info("auth.login_succeeded", user_id=str(user.id))
        return self._pair(issued)

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
        self.audit.record(
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

    async def refresh(self, refresh_token: str) -> TokenPair:
        now = utcnow()
        result = await self.sessions.rotate(refresh_token, now)
        if result.outcome is Rotation.REUSED:
            self.audit.record(
                AuditAction.REFRESH_REUSE_DETECTED,
                actor_id=None,
                target_type="user",
                target_id=result.user_id,
                details={"session_id": str(result.session_id)},
            )
            await self.session.commit()
            REFRESH_REUSE.inc()
            log.warning(
                "auth.refresh_reuse_detected",
                user_id=str(result.user_id),
                session_id=str(result.session_id),
            )
            raise Unauthorized(_BAD_REFRESH)
        if result.outcome is not Rotation.ROTATED or result.issued is None:
            raise Unauthorized(_BAD_REFRESH)
        if await self.users.get_active(result.issued.user_id) is None:
            await self.session.rollback()
            raise Unauthorized(_BAD_REFRESH)
        await self.session.commit()
        return self._pair(result.issued)

    async def logout(self, refresh_token: str) -> None:
        user_id = await self.sessions.end_by_refresh_token(refresh_token, utcnow())
        if user_id is not None:
            self.audit.record(
                AuditAction.LOGOUT, actor_id=user_id, target_type="user", target_id=user_id
            )
        await self.session.commit()

    async def logout_all(self, principal: Principal) -> None:
        await self.sessions.end_all(principal.user_id, "logout_all", utcnow())
        self.audit.record(
            AuditAction.LOGOUT_ALL,
            actor_id=principal.user_id,
            target_type="user",
            target_id=principal.user_id,
        )
        await self.session.commit()

    def _pair(self, issued: IssuedRefresh) -> TokenPair:
        access = self.resources.tokens.issue(
            subject=issued.user_id, session_id=issued.session_id, now=utcnow()
        )
        return TokenPair(
            access_token=access.token, expires_in=access.expires_in, refresh_token=issued.token
        )

    # --- password reset ---------------------------------------------------------------

    async def request_password_reset(self, email: str) -> Mail | None:
        """The reset mail to send, if the account exists; the caller answers 202 either way."""
        # The token is made whether or not the account exists, so both paths
        # do the same work before the database is asked.
        token, token_digest = new_secret()
        now = utcnow()
        user = await self.users.get_active_by_email(email)
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
        self.audit.record(
            AuditAction.PASSWORD_RESET_REQUESTED,
            actor_id=None,
            target_type="user",
            target_id=user.id,
        )
        await self.session.commit()
        log.info("auth.password_reset_requested", known=True, user_id=str(user.id))
        return self._reset_mail(user.email, token)

    def _reset_mail(self, to: str, token: str) -> Mail:
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

    async def confirm_password_reset(self, data: PasswordResetConfirm) -> None:
        now = utcnow()
        reset = await self.reset_tokens.reset_token(digest(data.token))
        if reset is None or reset.used_at is not None or reset.expires_at <= now:
            raise InvalidToken(_BAD_RESET)
        user = await self.users.get_active(reset.user_id)
        if user is None:
            raise InvalidToken(_BAD_RESET)
        ensure_new_password(data.new_password, email=user.email)
        await self.users.set_password_hash(
            user, await self.resources.hasher.hash(data.new_password)
        )
        # Spent together with every other token of the account, after the user
        # row is locked, as a password change does: the same lock order means
        # two confirmations cannot deadlock, and the one that waits finds its
        # token spent. Raising here rolls the new hash back.
        if reset.id not in await self.reset_tokens.void_reset_tokens(user.id, now):
            raise InvalidToken(_BAD_RESET)
        await self.sessions.end_all(user.id, "password_reset", now)
        self.audit.record(
            AuditAction.PASSWORD_RESET, actor_id=user.id, target_type="user", target_id=user.id
        )
        await self.session.commit()

    # --- reading a bearer token ---------------------------------------------------------

    async def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token, loaded fresh so revocation is immediate."""
        try:
            claims = self.resources.tokens.decode(token)
        except InvalidAccessToken as exc:
            raise Unauthorized(_BAD_TOKEN) from exc
        user = await self.users.get_active(claims.subject)
        if user is None or not await self.sessions.is_live(
            claims.session_id, claims.subject, utcnow()
        ):
            raise Unauthorized(_BAD_TOKEN)
        grants = await self.rbac.grants_for(user.id)
        structlog.contextvars.bind_contextvars(user_id=str(user.id))
        return Principal(
            user_id=user.id,
            session_id=claims.session_id,
            roles=grants.roles,
            permissions=grants.permissions,
        )
