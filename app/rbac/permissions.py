"""What the roles routes require; the catalogue (app/api/permissions.py) lists this class."""

from app.core.authz import Permission


class RolesPermission(Permission):
    READ = "roles:read"
    WRITE = "roles:write"
