"""What roles an account holds: read and changed inside another use case's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.authz import ADMIN_ROLE, Permission, PermissionCatalogue, Principal
from app.core.errors import Forbidden, Unprocessable
from app.rbac.repository import RoleRepository

MEMBER_ROLE = "member"
# `admin` holds every permission of the catalogue by definition and
# `member` is what new users get: neither may be deleted.
BUILTIN_ROLES = frozenset({ADMIN_ROLE, MEMBER_ROLE})
__all__ = ["ADMIN_ROLE", "BUILTIN_ROLES", "MEMBER_ROLE", "Grants", "RoleGrants", "ensure_within"]


@dataclass(frozen=True, slots=True)
class Grants:
    roles: frozenset[str]
    permissions: frozenset[Permission]


class RoleGrants:
    """Joins the caller's transaction; never commits."""

    def __init__(self, session: AsyncSession, catalogue: PermissionCatalogue) -> None:
        self.roles = RoleRepository(session)
        self.catalogue = catalogue

    async def grants_for(self, user_id: uuid.UUID) -> Grants:
        pairs = await self.roles.grants_for(user_id)
        return Grants(
            roles=frozenset(name for name, _ in pairs),
            permissions=self.catalogue.granted_by(pairs),
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
            granted = self.catalogue.granted_by(await self.roles.grants_of_roles(given))
            ensure_within(actor, granted)
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


def ensure_within(actor: Principal, permissions: Iterable[Permission]) -> None:
    """No one grants more than they hold, or they could make themselves anything."""
    beyond = set(permissions) - set(actor.permissions)
    if beyond:
        missing = ", ".join(sorted(beyond))
        raise Forbidden(f"You cannot grant permissions you do not hold: {missing}.")
