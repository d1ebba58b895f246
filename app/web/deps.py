"""Dependencies shared by every router, as `Annotated` aliases.

All are `async def`: FastAPI runs a plain `def` dependency in a worker
thread, which costs more than anything these do. The ones every
authenticated request solves take the `Request` and read the resources from
it rather than declaring `ResourcesDep`: FastAPI solves a declared
sub-dependency again wherever it appears, cached or not, and these appear
several times in each request's graph.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any, TypeVar, cast

import structlog
from asgi_correlation_id import correlation_id
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.authz import Permission, Principal
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.deadlines import REQUEST_DEADLINE, Deadline
from app.core.errors import Forbidden, Unauthorized
from app.core.resources import Resources, resources_of
from app.core.security.tokens import InvalidAccessToken
from app.identity.principal import resolve_principal

T = TypeVar("T")

TOKEN_URL = "/api/v1/auth/token"
_BAD_TOKEN = "The access token is invalid, expired or revoked."

_SCHEME_NAME = "OAuth2PasswordBearer"


async def get_resources(request: Request) -> Resources:
    return resources_of(request)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


_SESSION = "groundwork.session"


def request_session(request: Request) -> AsyncSession:
    """The request's session, made on first use and shared by everything the request does.

    Services commit before they return; whatever they left uncommitted (a
    read, a failed use case) is rolled back when the session closes. Nothing
    commits there: a write committed after the answer was sent could be lost
    with the client told it succeeded. It closes when the endpoint returns,
    before the answer is sent: an answer streamed from the database after
    that needs a session of its own (`resources_of(request).sessionmaker()`),
    closed by the stream.

    Dependencies that already take the `Request` call this rather than
    declaring `SessionDep`: each declared dependency is a node FastAPI solves
    on every request (0.04M to 0.1M instructions), cached or not.
    """
    session: AsyncSession | None = request.scope.get(_SESSION)
    if session is None:
        session = resources_of(request).sessionmaker()
        # Closed once the endpoint has returned and its answer is built,
        # before the answer is sent: a client that reads it slowly does not
        # hold a database connection meanwhile. That is the exit stack FastAPI
        # unwinds for dependencies with `yield` and `scope="function"`; the
        # close is registered on it directly rather than through a
        # generator, which costs FastAPI a context-manager wrapper and an
        # anyio cancel scope per request (~0.27M instructions on the items
        # list).
        _endpoint_exit_stack(request).push_async_exit(
            _closing(session, request.scope.get(REQUEST_DEADLINE))
        )
        request.scope[_SESSION] = session
    return session


def _closing(session: AsyncSession, deadline: Deadline | None) -> Any:
    """The exit callback that closes the request's session, whatever cancels the request.

    A close cut short would hand the connection back mid-rollback. The one
    thing that cancels a request is its deadline, which waits for the close
    (`Deadline.hold`). Without one (an app served without the request
    guard), the session's own exit closes it in a task of its own, behind
    `asyncio.shield`: that costs every request a task (~0.08M instructions
    on the items list).
    """
    if deadline is None:
        return session

    async def close(*_exception: object) -> bool:
        deadline.hold()
        try:
            await session.close()
        finally:
            deadline.release()
        return False

    return close


async def get_session(request: Request) -> AsyncSession:
    return request_session(request)


def _endpoint_exit_stack(request: Request) -> AsyncExitStack:
    # Set by FastAPI around every route's dependencies and endpoint; a
    # KeyError here (a FastAPI that renamed it) fails every request that uses
    # the database, so the test suite catches it, rather than leaking
    # connections.
    return cast("AsyncExitStack", request.scope["fastapi_function_astack"])


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

    async def build(request: Request, context: RequestContextDep) -> T:
        return service(request_session(request), resources_of(request), context)

    return Depends(build)


class BearerAuthentication(OAuth2PasswordBearer):
    """The principal behind the request's bearer token, or a 401.

    The dependency is the security scheme itself, so OpenAPI documents the
    password flow on every route that uses it, and FastAPI solves one node
    per request instead of the scheme and an authenticating function beneath
    it (~0.07M instructions on the items list).
    """

    def __init__(self) -> None:
        # auto_error=False: a missing token is answered by our own
        # problem+json 401. One scheme name for every guard, so OpenAPI
        # lists one scheme, under the name it has always had.
        super().__init__(tokenUrl=TOKEN_URL, auto_error=False, scheme_name=_SCHEME_NAME)

    # FastAPI calls it as a dependency, never as a bare scheme: it answers
    # with the principal, not the token.
    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await _authenticate(request, await super().__call__(request))


class PermissionGuard(BearerAuthentication):
    """Admits only principals holding `required_permission`."""

    def __init__(self, permission: Permission) -> None:
        super().__init__()
        # Lets tests (and tooling) find which permission a route demands.
        self.required_permission = permission

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await super().__call__(request)
        if not principal.can(self.required_permission):
            raise Forbidden(f"This action needs the `{self.required_permission}` permission.")
        return principal


async def _authenticate(request: Request, token: str | None) -> Principal:
    resources = resources_of(request)
    if not token:
        raise Unauthorized("Send an access token as `Authorization: Bearer <token>`.")
    try:
        claims = resources.tokens.decode(token)
    except InvalidAccessToken as exc:
        raise Unauthorized(_BAD_TOKEN) from exc
    principal = await resolve_principal(
        request_session(request), claims, resources.clock.now(), resources.permissions
    )
    if principal is None:
        raise Unauthorized(_BAD_TOKEN)
    structlog.contextvars.bind_contextvars(user_id=str(principal.user_id))
    return principal


get_principal = BearerAuthentication()
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> PermissionGuard:
    """A dependency that admits only principals holding `permission`.

    It authenticates by itself rather than declaring `CurrentPrincipal`: one
    node fewer for FastAPI to solve on every request a permission guards.
    """
    return PermissionGuard(permission)
