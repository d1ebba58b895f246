"""What the items routes require; the catalogue (app/api/permissions.py) lists this class."""

from app.core.authz import Permission


class ItemsPermission(Permission):
    READ = "items:read"
    WRITE = "items:write"
    # Widen READ and WRITE from the caller's own items to everyone's.
    READ_ANY = "items:read_any"
    WRITE_ANY = "items:write_any"
