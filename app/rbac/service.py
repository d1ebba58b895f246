from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.audit.trail import AuditTrail
from app.core.authz import Permission, Principal
from app.core.context import RequestContext
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.resources import Resources
from app.identity.models import Role
from app.rbac.grants import ADMIN_ROLE, BUILTIN_ROLES, ensure_within
from app.rbac.repository import RoleRepository
from app.rbac.schemas import RoleCreate, RoleRead, RoleUpdate


class RbacService:
    """The roles endpoints: each use case commits."""

    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.catalogue = resources.permissions
        self.roles = RoleRepository(session)
        self.audit = AuditTrail(session, context)

    async def list_roles(self) -> list[RoleRead]:
        return [
            RoleRead(name=role.name, permissions=self._shown(role.name, permissions))
            for role, permissions in await self.roles.all_with_permissions()
        ]

    async def create_role(self, actor: Principal, data: RoleCreate) -> RoleRead:
        permissions = self._known(data.permissions)
        if await self.roles.get_by_name(data.name) is not None:
            raise Conflict(f"A role named {data.name!r} already exists.")
        ensure_within(actor, permissions)
        try:
            role = await self.roles.add(Role(name=data.name))
            await self.roles.set_permissions(role, permissions)
        except IntegrityError as exc:
            await self.session.rollback()
            raise Conflict(f"A role named {data.name!r} already exists.") from exc
        return await self._changed(actor, role, "created")

    async def update_role(self, actor: Principal, name: str, data: RoleUpdate) -> RoleRead:
        permissions = self._known(data.permissions)
        role = await self._get(name)
        if name == ADMIN_ROLE and permissions != self.catalogue.everything:
            raise Conflict("The built-in admin role keeps every permission.")
        ensure_within(actor, permissions)
        # Nothing to store for admin: it holds the whole catalogue by definition.
        if name != ADMIN_ROLE:
            await self.roles.set_permissions(role, permissions)
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

    def _known(self, names: list[str]) -> frozenset[Permission]:
        unknown = self.catalogue.unknown(names)
        if unknown:
            raise Unprocessable(f"Unknown permissions: {', '.join(unknown)}.")
        return self.catalogue.parse(names)

    def _shown(self, name: str, permissions: list[str]) -> list[str]:
        """Admin's permissions in full, never a wildcard: it holds the catalogue without rows."""
        return [str(p) for p in self.catalogue] if name == ADMIN_ROLE else permissions

    async def _get(self, name: str) -> Role:
        role = await self.roles.get_by_name(name)
        if role is None:
            raise NotFound(f"No role named {name!r}.")
        return role

    async def _changed(self, actor: Principal, role: Role, change: str) -> RoleRead:
        permissions = self._shown(role.name, await self.roles.permissions_of(role))
        self.audit.record(
            AuditAction.ROLE_CHANGED,
            actor_id=actor.user_id,
            target_type="role",
            target_id=role.name,
            details={"change": change, "permissions": permissions},
        )
        await self.session.commit()
        return RoleRead(name=role.name, permissions=permissions)
