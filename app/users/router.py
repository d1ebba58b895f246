from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from app.api.deps import (
    CurrentPrincipal,
    RequestContextDep,
    ResourcesDep,
    SessionDep,
    require,
)
from app.api.responses import AUTHENTICATED, VALIDATED, problems
from app.core.authz import Permission, Principal
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from app.users.schemas import (
    PasswordChange,
    ProfileUpdate,
    UserAdminUpdate,
    UserExport,
    UserRead,
)
from app.users.service import UserService

router = APIRouter(prefix="/users", tags=["users"])


def get_user_service(
    session: SessionDep, resources: ResourcesDep, context: RequestContextDep
) -> UserService:
    return UserService(session, resources, context)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
UserReader = Annotated[Principal, Depends(require(Permission.USERS_READ))]
UserWriter = Annotated[Principal, Depends(require(Permission.USERS_WRITE))]


# --- the caller's own account ----------------------------------------------------


@router.get("/me", responses=problems(401))
async def read_me(principal: CurrentPrincipal, service: UserServiceDep) -> UserRead:
    return await service.read(principal.user_id)


@router.patch("/me", responses=problems(401, *VALIDATED))
async def update_me(
    data: ProfileUpdate, principal: CurrentPrincipal, service: UserServiceDep
) -> UserRead:
    return await service.update_profile(principal, data)


@router.post(
    "/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=problems(400, 401, *VALIDATED)
)
async def change_password(
    data: PasswordChange, principal: CurrentPrincipal, service: UserServiceDep
) -> None:
    """Change the password; every other session of the caller ends."""
    await service.change_password(principal, data)


@router.get("/me/export", responses=problems(401))
async def export_me(principal: CurrentPrincipal, service: UserServiceDep) -> UserExport:
    """Everything held about the caller: profile, items and audit events."""
    return await service.export(principal)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401, 409))
async def delete_me(principal: CurrentPrincipal, service: UserServiceDep) -> None:
    """Delete the account and its items; audit events about it keep no personal data."""
    await service.delete_self(principal)


# --- administration ------------------------------------------------------------------


@router.get("", responses=problems(*AUTHENTICATED, *VALIDATED, 400))
async def list_users(
    _: UserReader,
    service: UserServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[UserRead]:
    return await service.list_page(cursor=cursor, limit=limit)


@router.get("/{user_id}", responses=problems(*AUTHENTICATED, *VALIDATED, 404))
async def read_user(user_id: uuid.UUID, _: UserReader, service: UserServiceDep) -> UserRead:
    return await service.read(user_id)


@router.patch("/{user_id}", responses=problems(*AUTHENTICATED, *VALIDATED, 404, 409))
async def update_user(
    user_id: uuid.UUID, data: UserAdminUpdate, actor: UserWriter, service: UserServiceDep
) -> UserRead:
    """Activate, deactivate (ending the user's sessions) or set the user's roles."""
    return await service.update(actor, user_id, data)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(*AUTHENTICATED, *VALIDATED, 404, 409),
)
async def delete_user(user_id: uuid.UUID, actor: UserWriter, service: UserServiceDep) -> None:
    await service.delete(actor, user_id)
