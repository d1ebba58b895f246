from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from app.core.authz import Principal
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from app.users.permissions import UsersPermission
from app.users.schemas import PasswordChange, ProfileUpdate, UserAdminUpdate, UserRead
from app.users.service import ProfileService, UserAdminService
from app.web.deps import CurrentPrincipal, require, use_case
from app.web.responses import AUTHENTICATED, VALIDATED, problems

router = APIRouter(prefix="/users", tags=["users"])


ProfileServiceDep = Annotated[ProfileService, use_case(ProfileService)]
UserAdminServiceDep = Annotated[UserAdminService, use_case(UserAdminService)]
UserReader = Annotated[Principal, Depends(require(UsersPermission.READ))]
UserWriter = Annotated[Principal, Depends(require(UsersPermission.WRITE))]


# --- the caller's own account ----------------------------------------------------


@router.get("/me", responses=problems(401))
async def read_me(principal: CurrentPrincipal, service: ProfileServiceDep) -> UserRead:
    """The caller's own account."""
    return await service.read(principal)


@router.patch("/me", responses=problems(401, *VALIDATED))
async def update_me(
    data: ProfileUpdate, principal: CurrentPrincipal, service: ProfileServiceDep
) -> UserRead:
    """Change the caller's profile."""
    return await service.update_profile(principal, data)


@router.post(
    "/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=problems(400, 401, *VALIDATED)
)
async def change_password(
    data: PasswordChange, principal: CurrentPrincipal, service: ProfileServiceDep
) -> None:
    """Change the password; every other session of the caller ends."""
    await service.change_password(principal, data)


# --- administration ------------------------------------------------------------------


@router.get("", responses=problems(*AUTHENTICATED, *VALIDATED, 400))
async def list_users(
    _: UserReader,
    service: UserAdminServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[UserRead]:
    """Every account, a page at a time."""
    return await service.list_page(cursor=cursor, limit=limit)


@router.get("/{user_id}", responses=problems(*AUTHENTICATED, *VALIDATED, 404))
async def read_user(user_id: uuid.UUID, _: UserReader, service: UserAdminServiceDep) -> UserRead:
    """One account."""
    return await service.read(user_id)


@router.patch("/{user_id}", responses=problems(*AUTHENTICATED, *VALIDATED, 404, 409))
async def update_user(
    user_id: uuid.UUID, data: UserAdminUpdate, actor: UserWriter, service: UserAdminServiceDep
) -> UserRead:
    """Activate, deactivate (ending the user's sessions) or set the user's roles."""
    return await service.update(actor, user_id, data)
