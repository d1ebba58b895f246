"""The account use cases: the caller's own account, administration, and the operator's commands.

Each public method is one use case and commits before it returns.
"""

from __future__ import annotations

import uuid
from functools import cached_property

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.core.authz import Principal
from app.core.context import SYSTEM_CONTEXT, RequestContext
from app.core.errors import Conflict, InvalidRequest
from app.core.pagination import Page
from app.core.ratelimit import client_key
from app.core.resources import Resources
from app.core.security.password_policy import check_new_password, ensure_new_password
from app.rbac.grants import ADMIN_ROLE, MEMBER_ROLE, RoleGrants
from app.users.accounts import TARGET, Accounts, as_read
from app.users.schemas import PasswordChange, ProfileUpdate, UserAdminUpdate, UserRead

log = structlog.get_logger(__name__)


class ProfileService:
    """The caller's own account: /users/me."""

    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.context = context
        self.accounts = Accounts(session, resources, context)

    async def read(self, principal: Principal) -> UserRead:
        return await self.accounts.read(await self.accounts.get(principal.user_id))

    async def update_profile(self, principal: Principal, data: ProfileUpdate) -> UserRead:
        user = await self.accounts.get(principal.user_id)
        if "full_name" in data.model_fields_set:
            await self.accounts.update(user, full_name=data.full_name)
        await self.session.commit()
        return await self.accounts.read(user)

    async def change_password(self, principal: Principal, data: PasswordChange) -> None:
        user = await self.accounts.get(principal.user_id)
        # A stolen access token must not become a way to guess the password:
        # each check counts toward the account's login lockout, before hashing.
        lockout = self.resources.rate_limiter.lockout
        attempt = await lockout.attempt(user.email, client_key(self.context.ip))
        valid, _ = await self.resources.hasher.verify(data.current_password, user.password_hash)
        if not valid:
            raise InvalidRequest("The current password is not correct.")
        await lockout.succeeded(attempt)
        ensure_new_password(data.new_password, email=user.email)
        # Whoever else holds a login session may be the reason for the change.
        await self.accounts.replace_password(
            user,
            await self.resources.hasher.hash(data.new_password),
            self.resources.clock.now(),
            reason="password_changed",
            keep_session=principal.session_id,
        )
        self.accounts.audit.record(
            AuditAction.PASSWORD_CHANGED, actor_id=user.id, target_type=TARGET, target_id=user.id
        )
        await self.session.commit()


class UserAdminService:
    """Administration of every account: /users and /users/{id}."""

    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.accounts = Accounts(session, resources, context)

    @cached_property
    def grants(self) -> RoleGrants:
        return self.accounts.grants

    async def list_page(self, *, cursor: str | None, limit: int) -> Page[UserRead]:
        cursors = self.resources.cursors
        after = cursors.decode(cursor) if cursor else None
        rows, position = await self.accounts.users.list_page(after=after, limit=limit)
        # One query for the whole page's roles, not one per user.
        roles = await self.grants.role_names_of([user.id for user in rows])
        return Page[UserRead](
            items=[as_read(user, roles.get(user.id, ())) for user in rows],
            next_cursor=cursors.encode(position) if position else None,
        )

    async def read(self, user_id: uuid.UUID) -> UserRead:
        return await self.accounts.read(await self.accounts.get(user_id))

    async def update(self, actor: Principal, user_id: uuid.UUID, data: UserAdminUpdate) -> UserRead:
        # Locked first: the roles it holds decide what counts as a grant below.
        user = await self.accounts.get(user_id, lock=True)
        changes: dict[str, object] = {}
        if data.is_active is not None and data.is_active != user.is_active:
            if not data.is_active:
                if user.id == actor.user_id:
                    raise Conflict("You cannot deactivate your own account.")
                await self.accounts.ensure_not_last_admin(user.id)
                now = self.resources.clock.now()
                await self.accounts.login_sessions.end_all(user.id, "deactivated", now)
            await self.accounts.update(user, is_active=data.is_active)
            changes["is_active"] = data.is_active
        if data.roles is not None:
            if ADMIN_ROLE not in data.roles:
                await self.accounts.ensure_not_last_admin(user.id)
            await self.grants.set_user_roles(actor, user.id, data.roles)
            changes["roles"] = sorted(set(data.roles))
        if changes:
            self.accounts.audit.record(
                AuditAction.UPDATED,
                actor_id=actor.user_id,
                target_type=TARGET,
                target_id=user.id,
                details=changes,
            )
        await self.session.commit()
        return await self.accounts.read(user)


class OperatorService:
    """What an operator does from the command line (and the first admin at start-up)."""

    def __init__(self, session: AsyncSession, resources: Resources) -> None:
        self.session = session
        self.resources = resources
        self.accounts = Accounts(session, resources, SYSTEM_CONTEXT)

    async def ensure_admin(self, email: str, password: str) -> bool:
        """Create an admin unless an account with that email exists; True if created."""
        email = email.lower()
        if await self.accounts.find_by_email(email) is not None:
            return False
        check_new_password(password, email=email)
        try:
            user = await self.accounts.create(
                email, password, None, roles=[MEMBER_ROLE, ADMIN_ROLE]
            )
            await self.session.commit()
        except IntegrityError:
            # Lost a race with a concurrent registration of the same email.
            await self.session.rollback()
            return False
        log.info("user.registered", user_id=str(user.id))
        return True

    async def set_password(self, email: str, password: str) -> None:
        """Every login session of the account ends, and every reset token is spent."""
        user = await self.accounts.find_by_email(email)
        if user is None:
            raise LookupError(f"no account with the email {email.lower()!r}")
        check_new_password(password, email=user.email)
        new_hash = await self.resources.hasher.hash(password)
        now = self.resources.clock.now()
        await self.accounts.replace_password(user, new_hash, now, reason="password_reset")
        self.accounts.audit.record(
            AuditAction.PASSWORD_RESET, actor_id=None, target_type=TARGET, target_id=user.id
        )
        await self.session.commit()

    async def list_page(self, *, limit: int) -> Page[UserRead]:
        return await UserAdminService(self.session, self.resources, SYSTEM_CONTEXT).list_page(
            cursor=None, limit=limit
        )
