"""The routes that hand over or erase a person's data (under /users, beside the account's own)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.core.authz import Principal
from app.privacy.schemas import UserExport
from app.privacy.service import PersonalDataService
from app.users.permissions import UsersPermission
from app.web.deps import CurrentPrincipal, require, use_case
from app.web.responses import AUTHENTICATED, VALIDATED, problems

router = APIRouter(prefix="/users", tags=["users"])


PersonalDataServiceDep = Annotated[PersonalDataService, use_case(PersonalDataService)]
UserWriter = Annotated[Principal, Depends(require(UsersPermission.WRITE))]


@router.get("/me/export", responses=problems(401))
async def export_me(principal: CurrentPrincipal, service: PersonalDataServiceDep) -> UserExport:
    """Everything held about the caller: profile, items and audit events."""
    return await service.export(principal)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401, 409))
async def delete_me(principal: CurrentPrincipal, service: PersonalDataServiceDep) -> None:
    """Delete the account and its items; audit events about it keep no personal data."""
    await service.erase(principal, principal.user_id)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(*AUTHENTICATED, *VALIDATED, 404, 409),
)
async def delete_user(
    user_id: uuid.UUID, actor: UserWriter, service: PersonalDataServiceDep
) -> None:
    """Delete an account with its items; its audit events keep no personal data."""
    await service.erase(actor, user_id)
