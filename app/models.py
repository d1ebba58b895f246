"""Every table, imported in one place for Alembic and the test schema."""

from app.audit.models import AuditEvent
from app.db.base import Base
from app.idempotency.models import IdempotencyRecord
from app.identity.models import (
    LoginSession,
    PasswordResetToken,
    RefreshToken,
    Role,
    RolePermission,
    User,
    UserRole,
)
from app.items.models import Item
from app.outbox.models import OutboxMessage

__all__ = [
    "AuditEvent",
    "Base",
    "IdempotencyRecord",
    "Item",
    "LoginSession",
    "OutboxMessage",
    "PasswordResetToken",
    "RefreshToken",
    "Role",
    "RolePermission",
    "User",
    "UserRole",
]
