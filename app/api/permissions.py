"""The permission catalogue: each feature's permissions, one line per feature.

`admin` holds every permission listed here, by definition; role bodies may
name only these. The catalogue reaches the layers below the features at run
time, on `Resources` (app/main.py), so none of them imports a feature.
"""

from app.audit.permissions import AuditPermission
from app.core.authz import PermissionCatalogue
from app.items.permissions import ItemsPermission
from app.rbac.permissions import RolesPermission
from app.users.permissions import UsersPermission

CATALOGUE = PermissionCatalogue(
    AuditPermission,
    ItemsPermission,
    RolesPermission,
    UsersPermission,
)
