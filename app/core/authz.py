"""What a permission is, the catalogue of them, and the principal a request acts as.

Each feature declares its permissions next to its routes, as a subclass of
`Permission` (`app/items/permissions.py`); the app's catalogue collects them
(`app/api/permissions.py`) and reaches the code below the features at run
time, on `Resources`. Roles that bundle permissions live in the database,
except `admin`, which holds the whole catalogue by definition: a permission
declared in a feature is the admin's at once, with no data migration.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

ADMIN_ROLE = "admin"
# `resource:action`, lowercase: what role bodies may name and rows may hold.
PERMISSION_PATTERN = r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$"


class Permission(StrEnum):
    """A `resource:action` string a route requires; a feature's own subclass lists its members.

    A member is the string itself (`ItemsPermission.READ == "items:read"`), so
    permissions read from rows compare and hash alike.
    """


class PermissionCatalogue:
    """Every permission the app declares, from each feature's `Permission` subclass."""

    __slots__ = ("_by_value", "everything")

    def __init__(self, *features: type[Permission]) -> None:
        by_value: dict[str, Permission] = {}
        for feature in features:
            for permission in feature:
                if not re.fullmatch(PERMISSION_PATTERN, permission.value):
                    raise ValueError(f"{permission.value!r} is not a `resource:action` permission")
                if permission.value in by_value:
                    raise ValueError(f"{permission.value!r} is declared twice")
                by_value[permission.value] = permission
        self._by_value = by_value
        self.everything = frozenset(by_value.values())

    def __iter__(self) -> Iterator[Permission]:
        return iter(sorted(self.everything))

    def __len__(self) -> int:
        return len(self._by_value)

    def __contains__(self, value: object) -> bool:
        return value in self._by_value

    def unknown(self, values: Iterable[str]) -> list[str]:
        """The values the catalogue does not declare, sorted, once each."""
        return sorted({value for value in values if value not in self._by_value})

    def parse(self, values: Iterable[str]) -> frozenset[Permission]:
        """The declared permissions among `values`; anything else is dropped."""
        return frozenset(self._by_value[v] for v in values if v in self._by_value)

    def granted_by(self, grants: Iterable[tuple[str | None, str | None]]) -> frozenset[Permission]:
        """What (role, permission row) pairs grant: all of the catalogue if one role is admin.

        A permission no longer declared but still in a row grants nothing.
        """
        pairs = list(grants)
        if any(role == ADMIN_ROLE for role, _ in pairs):
            return self.everything
        return self.parse(p for _, p in pairs if p is not None)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: frozenset[str]
    permissions: frozenset[Permission]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions
