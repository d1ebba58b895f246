"""Accounts as other use cases need them: looked up, created, re-keyed, locked, removed.

`Accounts` joins the caller's transaction and never commits; the use case
that calls it (registration, login, a password reset, a data erasure)
commits once, with everything else it did.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.audit.trail import AuditTrail
from app.core.context import RequestContext
from app.core.errors import Conflict, NotFound
from app.core.resources import Resources
from app.identity.login_sessions import LoginSessions
from app.identity.models import User
from app.identity.repository import ResetTokenRepository
from app.rbac.grants import RoleGrants
from app.users.repository import UserRepository
from app.users.schemas import UserRead

TARGET = "user"


class Accounts:
    """Joins the caller's transaction; never commits."""

    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.context = context
        self.users = UserRepository(session)

    # Built on first use: a request pays only for the collaborators it reaches.
    @cached_property
    def grants(self) -> RoleGrants:
        return RoleGrants(self.session, self.resources.permissions)

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.session, self.context)

    @cached_property
    def login_sessions(self) -> LoginSessions:
        return LoginSessions(
            self.session, refresh_ttl_seconds=self.resources.settings.refresh_token_ttl_seconds
        )

    # --- lookups -----------------------------------------------------------------------

    async def get_active(self, user_id: uuid.UUID) -> User | None:
        user = await self.users.get(user_id)
        return user if user is not None and user.is_active else None

    async def find_by_email(self, email: str) -> User | None:
        return await self.users.get_by_email(email.lower())

    async def get_active_by_email(self, email: str) -> User | None:
        user = await self.find_by_email(email)
        return user if user is not None and user.is_active else None

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> User:
        user = await (self.users.get_for_update(user_id) if lock else self.users.get(user_id))
        if user is None:
            raise NotFound("No such user.")
        return user

    async def read(self, user: User) -> UserRead:
        return as_read(user, (await self.grants.grants_for(user.id)).roles)

    # --- changes -----------------------------------------------------------------------

    async def create(
        self, email: str, password: str, full_name: str | None, *, roles: list[str]
    ) -> User:
        """A new account holding `roles`; IntegrityError when the email is taken meanwhile."""
        user = await self.users.add(
            User(
                email=email,
                full_name=full_name,
                password_hash=await self.resources.hasher.hash(password),
            )
        )
        for role in roles:
            await self.grants.assign_role(user.id, role)
        self.audit.record(
            AuditAction.REGISTERED,
            actor_id=user.id,
            target_type=TARGET,
            target_id=user.id,
            details={"roles": roles},
        )
        return user

    async def update(self, user: User, **changes: object) -> None:
        await self.users.update(user, **changes)

    async def rehash(self, user: User, password_hash: str) -> None:
        """The same password under a current hash (bcrypt from an import, weaker parameters)."""
        await self.users.update(user, password_hash=password_hash)

    async def replace_password(
        self,
        user: User,
        password_hash: str,
        now: datetime,
        *,
        reason: str,
        keep_session: uuid.UUID | None = None,
    ) -> set[uuid.UUID]:
        """A new password: every reset token is spent and every other login session ends.

        The ids of the reset tokens it spent. The user's row is written first,
        so two changes to one account take their locks in the same order.
        """
        await self.users.update(user, password_hash=password_hash)
        spent = await ResetTokenRepository(self.session).void_all(user.id, now)
        await self.login_sessions.end_all(user.id, reason, now, keep=keep_session)
        return spent

    async def ensure_not_last_admin(self, user_id: uuid.UUID) -> None:
        if await self.grants.is_last_admin(user_id):
            raise Conflict("This is the last active admin; make another admin first.")

    async def delete(self, user: User) -> None:
        """The account, with its items and login sessions (by cascade)."""
        await self.users.delete(user)


def as_read(user: User, roles: Iterable[str]) -> UserRead:
    return UserRead(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        is_active=user.is_active,
        roles=sorted(roles),
        created_at=user.created_at,
    )
