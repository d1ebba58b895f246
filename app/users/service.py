from __future__ import annotations

import uuid
from collections.abc import Iterable

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.audit.service import AuditService
from app.auth.repository import AuthRepository
from app.auth.sessions import SessionService
from app.core.authz import Principal
from app.core.context import RequestContext
from app.core.errors import Conflict, InvalidRequest, NotFound
from app.core.pagination import Page
from app.core.ratelimit import client_key
from app.core.resources import Resources
from app.core.security.password_policy import check_new_password, ensure_new_password
from app.db.types import utcnow
from app.items.service import ItemService
from app.rbac.service import ADMIN_ROLE, MEMBER_ROLE, RbacService
from app.users.models import User
from app.users.repository import UserRepository
from app.users.schemas import (
    PasswordChange,
    ProfileUpdate,
    UserAdminUpdate,
    UserCreate,
    UserExport,
    UserRead,
)

log = structlog.get_logger(__name__)

TARGET = "user"


class UserService:
    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.context = context
        self.users = UserRepository(session)
        self.rbac = RbacService(session, context)
        self.audit = AuditService(session, context)
        self.sessions = SessionService(
            session, refresh_ttl_seconds=resources.settings.refresh_token_ttl_seconds
        )

    # --- lookups other services use ---------------------------------------------

    async def get_active(self, user_id: uuid.UUID) -> User | None:
        user = await self.users.get(user_id)
        return user if user is not None and user.is_active else None

    async def find_by_email(self, email: str) -> User | None:
        return await self.users.get_by_email(email.lower())

    async def get_active_by_email(self, email: str) -> User | None:
        user = await self.find_by_email(email)
        return user if user is not None and user.is_active else None

    async def set_password_hash(self, user: User, password_hash: str) -> None:
        user.password_hash = password_hash
        await self.session.flush()

    # --- registration and the first admin ---------------------------------------

    async def register(self, data: UserCreate) -> UserRead:
        if await self.users.get_by_email(data.email) is not None:
            raise Conflict("An account with this email already exists.")
        user = await self._create(data.email, data.password, data.full_name, roles=[MEMBER_ROLE])
        if user is None:
            raise Conflict("An account with this email already exists.")
        return await self.read(user.id)

    async def ensure_admin(self, email: str, password: str) -> bool:
        """Create an admin unless an account with that email exists; True if created."""
        email = email.lower()
        if await self.users.get_by_email(email) is not None:
            return False
        check_new_password(password, email=email)
        user = await self._create(email, password, None, roles=[MEMBER_ROLE, ADMIN_ROLE])
        return user is not None

    async def _create(
        self, email: str, password: str, full_name: str | None, *, roles: list[str]
    ) -> User | None:
        user = User(
            email=email,
            full_name=full_name,
            password_hash=await self.resources.hasher.hash(password),
        )
        try:
            await self.users.add(user)
            for role in roles:
                await self.rbac.assign_role(user.id, role)
            self.audit.record(
                AuditAction.REGISTERED,
                actor_id=user.id,
                target_type=TARGET,
                target_id=user.id,
                details={"roles": roles},
            )
            await self.session.commit()
        except IntegrityError:
            # Lost a race with a concurrent registration of the same email.
            await self.session.rollback()
            return None
        log.info("user.registered", user_id=str(user.id))
        return user

    # --- the caller's own account -------------------------------------------------

    async def read(self, user_id: uuid.UUID) -> UserRead:
        user = await self._get(user_id)
        return await self._read(user)

    async def update_profile(self, principal: Principal, data: ProfileUpdate) -> UserRead:
        user = await self._get(principal.user_id)
        if "full_name" in data.model_fields_set:
            user.full_name = data.full_name
        await self.session.commit()
        return await self._read(user)

    async def change_password(self, principal: Principal, data: PasswordChange) -> None:
        user = await self._get(principal.user_id)
        # A stolen access token must not become a way to guess the password:
        # each check counts toward the account's login lockout, before hashing.
        lockout = self.resources.rate_limiter.lockout
        attempt = await lockout.attempt(user.email, client_key(self.context.ip))
        valid, _ = await self.resources.hasher.verify(data.current_password, user.password_hash)
        if not valid:
            raise InvalidRequest("The current password is not correct.")
        await lockout.succeeded(attempt)
        ensure_new_password(data.new_password, email=user.email)
        user.password_hash = await self.resources.hasher.hash(data.new_password)
        await AuthRepository(self.session).void_reset_tokens(user.id, utcnow())
        # Whoever else holds a session may be the reason for the change.
        await self.sessions.end_all(
            user.id, "password_changed", utcnow(), keep=principal.session_id
        )
        self.audit.record(
            AuditAction.PASSWORD_CHANGED, actor_id=user.id, target_type=TARGET, target_id=user.id
        )
        await self.session.commit()

    async def reset_password(self, email: str, password: str) -> None:
        """An operator sets a password (the CLI); every session of the account ends."""
        user = await self.find_by_email(email)
        if user is None:
            raise LookupError(f"no account with the email {email.lower()!r}")
        check_new_password(password, email=user.email)
        user.password_hash = await self.resources.hasher.hash(password)
        await AuthRepository(self.session).void_reset_tokens(user.id, utcnow())
        await self.sessions.end_all(user.id, "password_reset", utcnow())
        self.audit.record(
            AuditAction.PASSWORD_RESET, actor_id=None, target_type=TARGET, target_id=user.id
        )
        await self.session.commit()

    async def export(self, principal: Principal) -> UserExport:
        user = await self._get(principal.user_id)
        items = await ItemService(self.session, self.resources).owned_by(user.id)
        self.audit.record(
            AuditAction.EXPORTED, actor_id=user.id, target_type=TARGET, target_id=user.id
        )
        await self.session.flush()
        events = await self.audit.for_subject(user.id)
        document = UserExport(
            profile=await self._read(user),
            items=[item.model_dump(mode="json") for item in items],
            audit_events=[event.model_dump(mode="json") for event in events],
            exported_at=utcnow(),
        )
        await self.session.commit()
        return document

    async def delete_self(self, principal: Principal) -> None:
        await self._delete(principal, principal.user_id)

    # --- administration --------------------------------------------------------------

    async def list_page(self, *, cursor: str | None, limit: int) -> Page[UserRead]:
        cursors = self.resources.cursors
        after = cursors.decode(cursor) if cursor else None
        rows, position = await self.users.list_page(after=after, limit=limit)
        # One query for the whole page's roles, not one per user.
        roles = await self.rbac.role_names_of([user.id for user in rows])
        return Page[UserRead](
            items=[_as_read(user, roles.get(user.id, ())) for user in rows],
            next_cursor=cursors.encode(position) if position else None,
        )

    async def update(self, actor: Principal, user_id: uuid.UUID, data: UserAdminUpdate) -> UserRead:
        # Locked first: the roles it holds decide what counts as a grant below.
        user = await self._get(user_id, lock=True)
        changes: dict[str, object] = {}
        if data.is_active is not None and data.is_active != user.is_active:
            if not data.is_active:
                if user.id == actor.user_id:
                    raise Conflict("You cannot deactivate your own account.")
                await self._keep_an_admin(user.id)
                await self.sessions.end_all(user.id, "deactivated", utcnow())
            user.is_active = data.is_active
            changes["is_active"] = data.is_active
        if data.roles is not None:
            if ADMIN_ROLE not in data.roles:
                await self._keep_an_admin(user.id)
            await self.rbac.set_user_roles(actor, user.id, data.roles)
            changes["roles"] = sorted(set(data.roles))
        if changes:
            self.audit.record(
                AuditAction.UPDATED,
                actor_id=actor.user_id,
                target_type=TARGET,
                target_id=user.id,
                details=changes,
            )
        await self.session.commit()
        return await self._read(user)

    async def delete(self, actor: Principal, user_id: uuid.UUID) -> None:
        await self._delete(actor, user_id)

    # --- internals ---------------------------------------------------------------------

    async def _get(self, user_id: uuid.UUID, *, lock: bool = False) -> User:
        user = await (self.users.get_for_update(user_id) if lock else self.users.get(user_id))
        if user is None:
            raise NotFound("No such user.")
        return user

    async def _read(self, user: User) -> UserRead:
        return _as_read(user, (await self.rbac.grants_for(user.id)).roles)

    async def _keep_an_admin(self, user_id: uuid.UUID) -> None:
        if await self.rbac.is_last_admin(user_id):
            raise Conflict("This is the last active admin; make another admin first.")

    async def _delete(self, actor: Principal, user_id: uuid.UUID) -> None:
        """The account, its items and sessions go in one transaction (by cascade)."""
        # The user's row before the admin role's, in the same order as `update`.
        user = await self._get(user_id, lock=True)
        await self._keep_an_admin(user.id)
        await self.audit.scrub_user(user.id)
        await self.users.delete(user)
        deleting_self = actor.user_id == user_id
        self.audit.record(
            AuditAction.DELETED,
            actor_id=None if deleting_self else actor.user_id,
            target_type=TARGET,
            target_id=user_id,
            # The request came from the person being forgotten.
            with_origin=not deleting_self,
        )
        await self.session.commit()
        log.info("user.deleted", user_id=str(user_id))


def _as_read(user: User, roles: Iterable[str]) -> UserRead:
    return UserRead(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        is_active=user.is_active,
        roles=sorted(roles),
        created_at=user.created_at,
    )
