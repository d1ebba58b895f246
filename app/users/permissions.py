"""What the account administration routes require; the catalogue lists this class."""

from app.core.authz import Permission


class UsersPermission(Permission):
    READ = "users:read"
    WRITE = "users:write"
