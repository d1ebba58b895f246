"""Dependencies shared by every router, as `Annotated` aliases.

All are `async def`: FastAPI runs a plain `def` dependency in a worker
thread, which costs more than anything these do. The ones every
authenticated request solves take the `Request` and read the resources from
it rather than declaring `ResourcesDep`: FastAPI solves a declared
sub-dependency again wherever it appears, cached or not, and these appear
several times in each request's graph.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

import structlog
from asgi_correlation_id import correlation_id
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.authz import Permission, Principal
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import Forbidden, Unauthorized
from app.core.resources import Resources, resources_of
from app.core.security.tokens import InvalidAccessToken
from app.identity.principal import resolve_principal

T = TypeVar("T")

TOKEN_URL = "/api/v1/auth/token"
_BAD_TOKEN = "The access token is invalid, expired or revoked."

# auto_error=False: a missing token is answered by our own problem+json 401.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_resources(request: Request) -> Resources:
    return resources_of(request)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # One session per request, shared by every service the request uses.
    # Services commit before they return; whatever they left uncommitted (a
    # read, a failed use case) is rolled back here. Nothing commits here: a
    # write committed after the answer was sent could be lost with the client
    # told it succeeded.
    async with resources_of(request).sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_request_context(request: Request) -> RequestContext:
    return RequestContext.of(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=correlation_id.get(),
    )


RequestContextDep = Annotated[RequestContext, Depends(get_request_context)]


def use_case(service: Callable[[AsyncSession, Resources, RequestContext], T]) -> Any:
    """A dependency building `service` for this request's session, resources and caller.

    `Annotated[LoginService, use_case(LoginService)]`: one provider for every
    use-case service, so a router declares what it needs and nothing else.
    """

    async def build(session: SessionDep, request: Request, context: RequestContextDep) -> T:
        return service(session, resources_of(request), context)

    return Depends(build)


BearerToken = Annotated[str | None, Depends(_bearer)]


async def _authenticate(session: AsyncSession, request: Request, token: str | None) -> Principal:
    resources = resources_of(request)
    if not token:
        raise Unauthorized("Send an access token as `Authorization: Bearer <token>`.")
    try:
        claims = resources.tokens.decode(token)
    except InvalidAccessToken as exc:
        raise Unauthorized(_BAD_TOKEN) from exc
    principal = await resolve_principal(
        session, claims, resources.clock.now(), resources.permissions
    )
    if principal is None:
        raise Unauthorized(_BAD_TOKEN)
    structlog.contextvars.bind_contextvars(user_id=str(principal.user_id))
    return principal


async def get_principal(session: SessionDep, request: Request, token: BearerToken) -> Principal:
    return await _authenticate(session, request, token)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only principals holding `permission`."""

    # Authenticates itself rather than declaring `CurrentPrincipal`: one node
    # fewer for FastAPI to solve on every request a permission guards.
    async def check(session: SessionDep, request: Request, token: BearerToken) -> Principal:
        principal = await _authenticate(session, request, token)
        if not principal.can(permission):
            raise Forbidden(f"This action needs the `{permission}` permission.")
        return principal

    check.__name__ = f"require_{permission.value.replace(':', '_')}"
    # Lets tests (and tooling) find which permission a route demands.
    check.required_permission = permission  # type: ignore[attr-defined]
    return check
