from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.audit.service import AuditService
from app.core.authz import Permission, Principal
from app.core.context import RequestContext
from app.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.rbac.models import Role
from app.rbac.repository import RoleRepository
from app.rbac.schemas import RoleCreate, RoleRead, RoleUpdate

ADMIN_ROLE = "admin"
MEMBER_ROLE = "member"
# `admin` always holds every permission and `member` is what new users get:
# neither may be deleted, and admin's permissions may not shrink.
BUILTIN_ROLES = frozenset({ADMIN_ROLE, MEMBER_ROLE})
_KNOWN_PERMISSIONS = {permission.value for permission in Permission}


@dataclass(frozen=True, slots=True)
class Grants:
    roles: frozenset[str]
    permissions: frozenset[Permission]


class RbacService:
    """Roles and what they grant."""

    def __init__(self, session: AsyncSession, context: RequestContext) -> None:
        self.session = session
        self.roles = RoleRepository(session)
        self.audit = AuditService(session, context)

    # --- used by other services, inside their transaction ---------------------

    async def grants_for(self, user_id: uuid.UUID) -> Grants:
        pairs = await self.roles.grants_for(user_id)
        return Grants(
            roles=frozenset(name for name, _ in pairs),
            # A permission dropped from the catalogue but still in a row is ignored.
            permissions=frozenset(
                Permission(permission)
                for _, permission in pairs
                if permission in _KNOWN_PERMISSIONS
            ),
        )

    async def role_names_of(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
        return await self.roles.role_names_of(user_ids)

    async def assign_role(self, user_id: uuid.UUID, role_name: str) -> None:
        role = await self.roles.get_by_name(role_name)
        if role is None:
            # Built-in roles are seeded by a migration; missing means the
            # database was not migrated, which is an operator error.
            raise LookupError(f"role {role_name!r} does not exist; run the migrations")
        await self.roles.assign(user_id, role)

    async def set_user_roles(
        self, actor: Principal, user_id: uuid.UUID, names: Sequence[str]
    ) -> None:
        """Replace a user's roles; each role newly given must grant only what `actor` holds.

        Roles the user keeps are not a grant, so someone with less than the
        user may still take a role away. The caller holds the user's row lock,
        so "already held" cannot change between this read and the write.
        """
        roles = await self.roles.get_many(names)
        unknown = set(names) - {role.name for role in roles}
        if unknown:
            raise Unprocessable(f"Unknown roles: {', '.join(sorted(unknown))}.")
        held = (await self.roles.role_names_of([user_id])).get(user_id, set())
        given = [role for role in roles if role.name not in held]
        if given:
            _ensure_within(actor, await self.roles.permissions_of_roles(given))
        await self.roles.set_user_roles(user_id, roles)

    async def is_last_admin(self, user_id: uuid.UUID) -> bool:
        """Whether `user_id` is the only active admin.

        Takes the admin role's row lock first and keeps it to the end of the
        transaction: two requests that each remove a different admin are
        checked one after the other, the second seeing what the first did.
        """
        await self.roles.lock(ADMIN_ROLE)
        if ADMIN_ROLE not in (await self.grants_for(user_id)).roles:
            return False
        return await self.roles.count_active_holders(ADMIN_ROLE, excluding=user_id) == 0

    # --- the roles endpoints: each commits ---------------------------------------

    async def list_roles(self) -> list[RoleRead]:
        return [
            RoleRead(name=role.name, permissions=permissions)
            for role, permissions in await self.roles.all_with_permissions()
        ]

    async def create_role(self, actor: Principal, data: RoleCreate) -> RoleRead:
        if await self.roles.get_by_name(data.name) is not None:
            raise Conflict(f"A role named {data.name!r} already exists.")
        _ensure_within(actor, data.permissions)
        try:
            role = await self.roles.add(Role(name=data.name))
            await self.roles.set_permissions(role, data.permissions)
        except IntegrityError as exc:
            await self.session.rollback()
            raise Conflict(f"A role named {data.name!r} already exists.") from exc
        return await self._changed(actor, role, "created")

    async def update_role(self, actor: Principal, name: str, data: RoleUpdate) -> RoleRead:
        role = await self._get(name)
        if name == ADMIN_ROLE and set(data.permissions) != set(Permission):
            raise Conflict("The built-in admin role keeps every permission.")
        _ensure_within(actor, data.permissions)
        await self.roles.set_permissions(role, data.permissions)
        return await self._changed(actor, role, "updated")

    async def delete_role(self, actor: Principal, name: str) -> None:
        role = await self._get(name)
        if name in BUILTIN_ROLES:
            raise Conflict(f"The built-in {name!r} role cannot be deleted.")
        await self.roles.delete(role)
        self.audit.record(
            AuditAction.ROLE_CHANGED,
            actor_id=actor.user_id,
            target_type="role",
            target_id=name,
            details={"change": "deleted"},
        )
        await self.session.commit()

    async def _get(self, name: str) -> Role:
        role = await self.roles.get_by_name(name)
        if role is None:
            raise NotFound(f"No role named {name!r}.")
        return role

    async def _changed(self, actor: Principal, role: Role, change: str) -> RoleRead:
        permissions = await self.roles.permissions_of(role)
        self.audit.record(
            AuditAction.ROLE_CHANGED,
            actor_id=actor.user_id,
            target_type="role",
            target_id=role.name,
            details={"change": change, "permissions": permissions},
        )
        await self.session.commit()
        return RoleRead(name=role.name, permissions=permissions)


def _ensure_within(actor: Principal, permissions: Iterable[str]) -> None:
    """No one grants more than they hold, or they could make themselves anything."""
    # A permission dropped from the catalogue grants nothing, so giving it is no grant.
    beyond = {p for p in permissions if p in _KNOWN_PERMISSIONS} - set(actor.permissions)
    if beyond:
        missing = ", ".join(sorted(beyond))
        raise Forbidden(f"You cannot grant permissions you do not hold: {missing}.")
