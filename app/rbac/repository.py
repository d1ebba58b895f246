from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.identity.models import Role, RolePermission, User, UserRole


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

    async def role_names_of(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
        names: dict[uuid.UUID, set[str]] = {}
        if not user_ids:
            return names
        statement = (
            select(UserRole.user_id, Role.name)
            .join(Role, Role.id == UserRole.role_id)
            .where(UserRole.user_id.in_(user_ids))
        )
        for user_id, name in await self.session.execute(statement):
            names.setdefault(user_id, set()).add(name)
        return names

    async def all_with_permissions(self) -> list[tuple[Role, list[str]]]:
        statement = (
            select(Role, RolePermission.permission)
            .outerjoin(RolePermission, RolePermission.role_id == Role.id)
            .order_by(Role.name, RolePermission.permission)
        )
        grouped: dict[uuid.UUID, tuple[Role, list[str]]] = {}
        for role, permission in await self.session.execute(statement):
            entry = grouped.setdefault(role.id, (role, []))
            if permission is not None:
                entry[1].append(permission)
        return list(grouped.values())

    async def permissions_of(self, role: Role) -> list[str]:
        statement = select(RolePermission.permission).where(RolePermission.role_id == role.id)
        return sorted((await self.session.scalars(statement)).all())

    async def grants_of_roles(self, roles: Iterable[Role]) -> list[tuple[str, str | None]]:
        """(role name, permission) pairs of the roles; a role without permissions yields None."""
        statement = (
            select(Role.name, RolePermission.permission)
            .outerjoin(RolePermission, RolePermission.role_id == Role.id)
            .where(Role.id.in_({role.id for role in roles}))
        )
        return [(name, permission) for name, permission in await self.session.execute(statement)]

    async def lock(self, name: str) -> None:
        """Hold the role's row until the transaction ends; others taking it wait.

        `FOR NO KEY UPDATE` so that granting the role (a foreign-key check)
        still goes ahead. SQLite has no row locks: there a writer holds the
        whole database from BEGIN IMMEDIATE, which serialises as much.
        """
        statement = select(Role.id).where(Role.name == name).with_for_update(key_share=True)
        await self.session.execute(statement)

    async def get_by_name(self, name: str) -> Role | None:
        result: Role | None = await self.session.scalar(select(Role).where(Role.name == name))
        return result

    async def get_many(self, names: Iterable[str]) -> Sequence[Role]:
        return (await self.session.scalars(select(Role).where(Role.name.in_(set(names))))).all()

    async def add(self, role: Role) -> Role:
        self.session.add(role)
        await self.session.flush()
        return role

    async def delete(self, role: Role) -> None:
        await self.session.delete(role)
        await self.session.flush()

    async def set_permissions(self, role: Role, permissions: Iterable[str]) -> None:
        await self.session.execute(delete(RolePermission).where(RolePermission.role_id == role.id))
        self.session.add_all(
            RolePermission(role_id=role.id, permission=p) for p in set(permissions)
        )
        await self.session.flush()

    async def assign(self, user_id: uuid.UUID, role: Role) -> None:
        existing = await self.session.get(UserRole, (user_id, role.id))
        if existing is None:
            self.session.add(UserRole(user_id=user_id, role_id=role.id))
            await self.session.flush()

    async def set_user_roles(self, user_id: uuid.UUID, roles: Iterable[Role]) -> None:
        await self.session.execute(delete(UserRole).where(UserRole.user_id == user_id))
        self.session.add_all(UserRole(user_id=user_id, role_id=role.id) for role in roles)
        await self.session.flush()

    async def count_active_holders(self, role_name: str, *, excluding: uuid.UUID) -> int:
        statement = (
            select(func.count())
            .select_from(UserRole)
            .join(Role, Role.id == UserRole.role_id)
            .join(User, User.id == UserRole.user_id)
            .where(Role.name == role_name, User.is_active.is_(True), User.id != excluding)
        )
        return int(await self.session.scalar(statement) or 0)
