from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, status
from fastapi.security import OAuth2PasswordRequestForm

from app.auth.login import LoginService
from app.auth.password_reset import PasswordResetService
from app.auth.registration import RegistrationService
from app.auth.schemas import (
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenPair,
)
from app.auth.tokens import TokenService
from app.core.ratelimit import LimitName
from app.identity.models import EMAIL_MAX_LENGTH
from app.users.schemas import UserCreate, UserRead
from app.web.deps import CurrentPrincipal, ResourcesDep, use_case
from app.web.ratelimit import rate_limit
from app.web.responses import VALIDATED, problems

router = APIRouter(prefix="/auth", tags=["auth"])


# One service per use case: a request builds only the one it calls.
RegistrationServiceDep = Annotated[RegistrationService, use_case(RegistrationService)]
LoginServiceDep = Annotated[LoginService, use_case(LoginService)]
TokenServiceDep = Annotated[TokenService, use_case(TokenService)]
PasswordResetServiceDep = Annotated[PasswordResetService, use_case(PasswordResetService)]


class PasswordForm(OAuth2PasswordRequestForm):
    """The OAuth2 password form, its `username` no longer than any stored email can be.

    A longer one cannot name an account, so it is a 422 before anything is counted or hashed.
    """

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[str, Form(max_length=EMAIL_MAX_LENGTH)],
        password: Annotated[str, Form(json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses=problems(*VALIDATED, 403, 409),
    dependencies=[rate_limit(LimitName.REGISTER)],
)
async def register(data: UserCreate, service: RegistrationServiceDep) -> UserRead:
    """Create an account with the member role."""
    return await service.register(data)


@router.post(
    "/token",
    responses=problems(*VALIDATED, 400, 401),
    dependencies=[rate_limit(LimitName.LOGIN)],
)
async def issue_token(
    form: Annotated[PasswordForm, Depends()], service: LoginServiceDep
) -> TokenPair:
    """OAuth2 password flow: `username` is the email. Swagger's Authorize uses it."""
    return await service.login(form.username, form.password)


@router.post(
    "/refresh",
    responses=problems(*VALIDATED, 401),
    dependencies=[rate_limit(LimitName.REFRESH)],
)
async def refresh(data: RefreshRequest, service: TokenServiceDep) -> TokenPair:
    """Spend a refresh token for a new pair. A spent token presented again ends its session."""
    return await service.refresh(data.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problems(*VALIDATED))
async def logout(data: RefreshRequest, service: TokenServiceDep) -> None:
    """End the session of this refresh token. Unknown tokens are accepted silently."""
    await service.logout(data.refresh_token)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401))
async def logout_all(principal: CurrentPrincipal, service: TokenServiceDep) -> None:
    """End every session of the caller, this one included."""
    await service.logout_all(principal)


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(*VALIDATED),
    dependencies=[rate_limit(LimitName.PASSWORD_RESET)],
)
async def request_password_reset(
    data: PasswordResetRequest,
    service: PasswordResetServiceDep,
    resources: ResourcesDep,
) -> PasswordResetAccepted:
    """Ask for a password-reset mail.

    Always 202 with the same words: the answer does not say whether the
    email has an account.
    """
    # Only queued here: the mail is sent by a job, so its latency tells nothing.
    await service.request(data.email)
    minutes = resources.settings.password_reset_ttl_seconds // 60
    return PasswordResetAccepted(
        detail=(
            "If an account has this email, a reset token is on its way to it. "
            f"It works once, for {minutes} minutes, at POST /api/v1/auth/password-reset/confirm."
        )
    )


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(*VALIDATED, 400),
    dependencies=[rate_limit(LimitName.PASSWORD_RESET)],
)
async def confirm_password_reset(
    data: PasswordResetConfirm, service: PasswordResetServiceDep
) -> None:
    """Set a new password with a reset token; every session of the account ends."""
    await service.confirm(data)
