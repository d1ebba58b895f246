"""The admin role holds every permission by definition, not by rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What 0001 seeded for admin, restored on the way down.
ADMIN_PERMISSIONS = [
    "items:read",
    "items:write",
    "items:read_any",
    "items:write_any",
    "users:read",
    "users:write",
    "roles:read",
    "roles:write",
    "audit:read",
]

_roles = sa.table("roles", sa.column("id", sa.Uuid()), sa.column("name", sa.String()))
_role_permissions = sa.table(
    "role_permissions", sa.column("role_id", sa.Uuid()), sa.column("permission", sa.String())
)


_ADMIN_ID = sa.select(_roles.c.id).where(_roles.c.name == "admin")


def upgrade() -> None:
    op.execute(
        _role_permissions.delete().where(_role_permissions.c.role_id == _ADMIN_ID.scalar_subquery())
    )


def downgrade() -> None:
    admin_id = op.get_bind().execute(_ADMIN_ID).scalar_one()
    op.execute(
        _role_permissions.insert().values(
            [{"role_id": admin_id, "permission": permission} for permission in ADMIN_PERMISSIONS]
        )
    )
