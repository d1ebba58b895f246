"""Refreshing and ending login sessions, and the token pair a login or a refresh hands out."""

from __future__ import annotations

from functools import cached_property

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.audit.trail import AuditTrail
from app.auth.schemas import TokenPair
from app.core.authz import Principal
from app.core.context import RequestContext
from app.core.errors import Unauthorized
from app.core.metrics import REFRESH_REUSE
from app.core.resources import Resources
from app.identity.login_sessions import IssuedRefresh, LoginSessions, Rotation
from app.users.accounts import Accounts

log = structlog.get_logger(__name__)

_BAD_REFRESH = "The refresh token is invalid, expired or revoked."


def token_pair(resources: Resources, issued: IssuedRefresh) -> TokenPair:
    access = resources.tokens.issue(
        subject=issued.user_id, session_id=issued.session_id, now=resources.clock.now()
    )
    return TokenPair(
        access_token=access.token, expires_in=access.expires_in, refresh_token=issued.token
    )


def login_sessions_of(session: AsyncSession, resources: Resources) -> LoginSessions:
    return LoginSessions(session, refresh_ttl_seconds=resources.settings.refresh_token_ttl_seconds)


class TokenService:
    """Refresh, log out, log out everywhere: each use case commits."""

    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.context = context
        self.login_sessions = login_sessions_of(session, resources)

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.session, self.context)

    async def refresh(self, refresh_token: str) -> TokenPair:
        now = self.resources.clock.now()
        result = await self.login_sessions.rotate(refresh_token, now)
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
        accounts = Accounts(self.session, self.resources, self.context)
        if await accounts.get_active(result.issued.user_id) is None:
            await self.session.rollback()
            raise Unauthorized(_BAD_REFRESH)
        await self.session.commit()
        return token_pair(self.resources, result.issued)

    async def logout(self, refresh_token: str) -> None:
        now = self.resources.clock.now()
        user_id = await self.login_sessions.end_by_refresh_token(refresh_token, now)
        if user_id is not None:
            self.audit.record(
                AuditAction.LOGOUT, actor_id=user_id, target_type="user", target_id=user_id
            )
        await self.session.commit()

    async def logout_all(self, principal: Principal) -> None:
        now = self.resources.clock.now()
        await self.login_sessions.end_all(principal.user_id, "logout_all", now)
        self.audit.record(
            AuditAction.LOGOUT_ALL,
            actor_id=principal.user_id,
            target_type="user",
            target_id=principal.user_id,
        )
        await self.session.commit()
