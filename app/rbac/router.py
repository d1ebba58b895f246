from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from app.core.authz import Principal
from app.core.text import NUL_FREE
from app.rbac.permissions import RolesPermission
from app.rbac.schemas import RoleCreate, RoleRead, RoleUpdate
from app.rbac.service import RbacService
from app.web.deps import require, use_case
from app.web.responses import AUTHENTICATED, VALIDATED, problems

router = APIRouter(prefix="/roles", tags=["roles"])


RbacServiceDep = Annotated[RbacService, use_case(RbacService)]
RoleReader = Annotated[Principal, Depends(require(RolesPermission.READ))]
RoleWriter = Annotated[Principal, Depends(require(RolesPermission.WRITE))]
RoleNamePath = Annotated[str, Path(max_length=64, pattern=NUL_FREE)]


@router.get("", responses=problems(*AUTHENTICATED))
async def list_roles(_: RoleReader, service: RbacServiceDep) -> list[RoleRead]:
    """Every role with the permissions it grants."""
    return await service.list_roles()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems(*AUTHENTICATED, *VALIDATED, 409),
)
async def create_role(data: RoleCreate, actor: RoleWriter, service: RbacServiceDep) -> RoleRead:
    """Create a role granting permissions the caller holds."""
    return await service.create_role(actor, data)


@router.patch("/{name}", responses=problems(*AUTHENTICATED, *VALIDATED, 404, 409))
async def update_role(
    name: RoleNamePath, data: RoleUpdate, actor: RoleWriter, service: RbacServiceDep
) -> RoleRead:
    """Replace the role's permissions. Changes apply on each holder's next request."""
    return await service.update_role(actor, name, data)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(*AUTHENTICATED, *VALIDATED, 404, 409),
)
async def delete_role(name: RoleNamePath, actor: RoleWriter, service: RbacServiceDep) -> None:
    """Delete a role that is not built in."""
    await service.delete_role(actor, name)
