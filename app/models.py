"""Every table, imported in one place for Alembic and the test schema."""

from app.audit.models import AuditEvent
from app.auth.models import AuthSession, PasswordResetToken, RefreshToken
from app.db.base import Base
from app.idempotency.models import IdempotencyRecord
from app.items.models import Item
from app.rbac.models import Role, RolePermission, UserRole
from app.users.models import User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "Base",
    "IdempotencyRecord",
    "Item",
    "PasswordResetToken",
    "RefreshToken",
    "Role",
    "RolePermission",
    "User",
    "UserRole",
]
