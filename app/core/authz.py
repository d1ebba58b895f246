"""The permission catalogue and the principal a request acts as.

Permissions are named once, here; roles that bundle them live in the database,
except `admin`, which holds the whole catalogue by definition: a permission
added here is the admin's at once, with no data migration.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    ITEMS_READ = "items:read"
    ITEMS_WRITE = "items:write"
    ITEMS_READ_ANY = "items:read_any"
    ITEMS_WRITE_ANY = "items:write_any"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    ROLES_READ = "roles:read"
    ROLES_WRITE = "roles:write"
    AUDIT_READ = "audit:read"


ADMIN_ROLE = "admin"
EVERY_PERMISSION = frozenset(Permission)
_KNOWN = frozenset(permission.value for permission in Permission)


def granted_by(grants: Iterable[tuple[str | None, str | None]]) -> frozenset[Permission]:
    """What (role, permission row) pairs grant: all of the catalogue if one role is admin.

    A permission dropped from the catalogue but still in a row grants nothing.
    """
    pairs = list(grants)
    if any(role == ADMIN_ROLE for role, _ in pairs):
        return EVERY_PERMISSION
    return frozenset(Permission(p) for _, p in pairs if p is not None and p in _KNOWN)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: frozenset[str]
    permissions: frozenset[Permission]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions
