from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import TokenResponse
from app.core.authz import Principal
from app.core.config import Settings
from app.core.errors import Forbidden, InvalidCredentials, Unauthorized
from app.core.security.password_policy import MAX_LENGTH
from app.core.security.passwords import PasswordHasher
from app.core.security.tokens import AccessTokenCodec, InvalidToken
from app.db.types import utcnow
from app.rbac.service import RbacService
from app.users.schemas import UserCreate, UserRead
from app.users.service import UserService

log = structlog.get_logger(__name__)


class AuthService:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        hasher: PasswordHasher,
        tokens: AccessTokenCodec,
    ) -> None:
        self.session = session
        self.settings = settings
        self.hasher = hasher
        self.tokens = tokens
        self.users = UserService(session, hasher)
        self.rbac = RbacService(session)

    async def register(self, data: UserCreate) -> UserRead:
        if not self.settings.open_registration:
            raise Forbidden("Registration is closed; ask an administrator for an account.")
        return await self.users.register(data)

    async def login(self, email: str, password: str) -> TokenResponse:
        """Exchange credentials for tokens; every failure looks the same to the caller."""
        if len(password) > MAX_LENGTH:
            # No stored password can be this long; refuse before hashing it.
            raise InvalidCredentials
        user = await self.users.find_by_email(email)
        if user is None:
            await self.hasher.burn(password)
            log.info("auth.login_failed", reason="unknown_email")
            raise InvalidCredentials
        valid, new_hash = await self.hasher.verify(password, user.password_hash)
        if not valid or not user.is_active:
            log.info("auth.login_failed", user_id=str(user.id), reason="bad_credentials")
            raise InvalidCredentials
        if new_hash is not None:
            await self.users.replace_password_hash(user, new_hash)
        await self.session.commit()
        issued = self.tokens.issue(subject=user.id, session_id=uuid.uuid4(), now=utcnow())
        log.info("auth.login_succeeded", user_id=str(user.id))
        return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)

    async def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token, loaded fresh so revocation is immediate."""
        try:
            claims = self.tokens.decode(token)
        except InvalidToken as exc:
            raise Unauthorized("The access token is invalid or expired.") from exc
        user = await self.users.get_active(claims.subject)
        if user is None:
            raise Unauthorized("The access token is invalid or expired.")
        grants = await self.rbac.grants_for(user.id)
        structlog.contextvars.bind_contextvars(user_id=str(user.id))
        return Principal(
            user_id=user.id,
            session_id=claims.session_id,
            roles=grants.roles,
            permissions=grants.permissions,
        )
