"""Dependencies shared by every router, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import AuthService
from app.core.authz import Permission, Principal
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import Forbidden, Unauthorized
from app.core.resources import Resources, resources_of

TOKEN_URL = "/api/v1/auth/token"

# auto_error=False: a missing token is answered by our own problem+json 401.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def get_resources(request: Request) -> Resources:
    return resources_of(request)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    # One session per request, shared by every service the request uses;
    # services commit, and whatever they did not commit is rolled back here.
    async with resources.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_request_context(request: Request) -> RequestContext:
    return RequestContext.of(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=correlation_id.get(),
    )


RequestContextDep = Annotated[RequestContext, Depends(get_request_context)]


def get_auth_service(
    session: SessionDep, resources: ResourcesDep, context: RequestContextDep
) -> AuthService:
    return AuthService(session, resources, context)


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


async def get_principal(
    auth: AuthServiceDep, token: Annotated[str | None, Depends(_bearer)]
) -> Principal:
    if not token:
        raise Unauthorized("Send an access token as `Authorization: Bearer <token>`.")
    return await auth.authenticate(token)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits only principals holding `permission`."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"This action needs the `{permission}` permission.")
        return principal

    check.__name__ = f"require_{permission.name.lower()}"
    # Lets tests (and tooling) find which permission a route demands.
    check.required_permission = permission  # type: ignore[attr-defined]
    return check
