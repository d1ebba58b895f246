"""What the audit trail's routes require; the catalogue lists this class."""

from app.core.authz import Permission


class AuditPermission(Permission):
    READ = "audit:read"
