from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.authz import Permission
from app.rbac.repository import RoleRepository

ADMIN_ROLE = "admin"
MEMBER_ROLE = "member"
_KNOWN_PERMISSIONS = {permission.value for permission in Permission}


@dataclass(frozen=True, slots=True)
class Grants:
    roles: frozenset[str]
    permissions: frozenset[Permission]


class RbacService:
    """Roles and what they grant. Callers own the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.roles = RoleRepository(session)

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

    async def assign_role(self, user_id: uuid.UUID, role_name: str) -> None:
        role = await self.roles.get_by_name(role_name)
        if role is None:
            # Built-in roles are seeded by a migration; missing means the
            # database was not migrated, which is an operator error.
            raise LookupError(f"role {role_name!r} does not exist; run the migrations")
        await self.roles.assign(user_id, role)
