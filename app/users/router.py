from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import CurrentPrincipal, ResourcesDep, SessionDep
from app.api.responses import problems
from app.users.schemas import UserRead
from app.users.service import UserService

router = APIRouter(prefix="/users", tags=["users"])


def get_user_service(session: SessionDep, resources: ResourcesDep) -> UserService:
    return UserService(session, resources.hasher)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


@router.get("/me", responses=problems(401))
async def read_me(principal: CurrentPrincipal, service: UserServiceDep) -> UserRead:
    return await service.read(principal.user_id)
