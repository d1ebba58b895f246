from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.rbac.models import Role, RolePermission, UserRole


class RoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def grants_for(self, user_id: uuid.UUID) -> list[tuple[str, str | None]]:
        """(role name, permission) pairs of a user; a role without permissions yields None."""
        statement = (
            select(Role.name, RolePermission.permission)
            .join(UserRole, UserRole.role_id == Role.id)
            .outerjoin(RolePermission, RolePermission.role_id == Role.id)
            .where(UserRole.user_id == user_id)
        )
        return [(name, permission) for name, permission in await self.session.execute(statement)]

    async def get_by_name(self, name: str) -> Role | None:
        result: Role | None = await self.session.scalar(select(Role).where(Role.name == name))
        return result

    async def assign(self, user_id: uuid.UUID, role: Role) -> None:
        existing = await self.session.get(UserRole, (user_id, role.id))
        if existing is None:
            self.session.add(UserRole(user_id=user_id, role_id=role.id))
            await self.session.flush()
