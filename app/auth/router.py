from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import AuthServiceDep
from app.api.responses import VALIDATED, problems
from app.auth.schemas import TokenResponse
from app.users.schemas import UserCreate, UserRead

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses=problems(*VALIDATED, 403, 409),
)
async def register(data: UserCreate, service: AuthServiceDep) -> UserRead:
    return await service.register(data)


@router.post("/token", responses=problems(*VALIDATED, 400, 401))
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], service: AuthServiceDep
) -> TokenResponse:
    """OAuth2 password flow: `username` is the email. Swagger's Authorize uses it."""
    return await service.login(form.username, form.password)
