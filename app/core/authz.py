"""The permission catalogue and the principal a request acts as.

Permissions are named once, here; roles that bundle them live in the database.
"""

from __future__ import annotations

import uuid
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


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: frozenset[str]
    permissions: frozenset[Permission]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions
