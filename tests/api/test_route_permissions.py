"""Every API route is public on purpose, self-service for a signed-in user, or guarded.

The routes are read from the application itself, so a route added later is
checked without anyone remembering to write a test for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.permissions import CATALOGUE
from app.core.authz import Permission
from app.web.deps import get_principal
from tests.conftest import AccountFactory

API_PREFIX = "/api/v1"
# Reachable without a token, by design; each answers for itself who may use it.
PUBLIC = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/password-reset/request"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
}
# A user acting on their own account: a token is needed, a permission is not.
SELF_SERVICE_PREFIXES = ("/api/v1/users/me",)
SELF_SERVICE_PATHS = {"/api/v1/auth/logout-all"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    permissions: frozenset[Permission]
    needs_principal: bool
    path_params: dict[str, Any]

    @property
    def public(self) -> bool:
        return (self.method, self.path) in PUBLIC

    @property
    def self_service(self) -> bool:
        return self.path in SELF_SERVICE_PATHS or self.path.startswith(SELF_SERVICE_PREFIXES)

    def url(self) -> str:
        """The path with every parameter filled with a value that names nothing."""
        values = {
            name: str(uuid.uuid4()) if annotation is uuid.UUID else "no-such-name"
            for name, annotation in self.path_params.items()
        }
        return self.path.format(**values)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency callable a route resolves, however deeply nested."""
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def api_operations(app: FastAPI) -> list[Operation]:
    operations: list[Operation] = []
    # FastAPI keeps included routers as lazy branches; this flattens them with
    # their prefixes and router-level dependencies applied.
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        path = context.path
        if not path or not path.startswith(API_PREFIX + "/"):
            continue
        dependant: Dependant = context.dependant
        found = list(calls(dependant))
        permissions = frozenset(
            getattr(call, "required_permission")  # noqa: B009
            for call in found
            if hasattr(call, "required_permission")
        )
        params = {field.name: field.field_info.annotation for field in dependant.path_params}
        for method in sorted(context.methods or ()):
            operations.append(Operation(method, path, permissions, get_principal in found, params))
    return operations


def test_the_walk_sees_every_feature_router(app: FastAPI) -> None:
    """Guards the walk itself: an empty or partial walk would prove nothing."""
    seen = {str(operation) for operation in api_operations(app)}

    assert {
        "POST /api/v1/auth/token",
        "GET /api/v1/users/me",
        "PATCH /api/v1/users/{user_id}",
        "DELETE /api/v1/roles/{name}",
        "GET /api/v1/items/{item_id}",
        "GET /api/v1/audit-events",
    } <= seen
    assert {f"{method} {path}" for method, path in PUBLIC} <= seen, "PUBLIC names a lost route"


def test_every_route_is_public_self_service_or_requires_a_permission(app: FastAPI) -> None:
    """A route added without `require(Permission...)` fails here.

    Make it depend on `require(<permission>)` (see `app/web/deps.py`), or, if it
    really is meant for anonymous callers or for a user's own account, add it
    to PUBLIC or SELF_SERVICE above, where a reviewer will see it.
    """
    unguarded = [
        str(operation)
        for operation in api_operations(app)
        if not (operation.public or operation.self_service or operation.permissions)
    ]

    assert unguarded == []


def test_every_permission_a_route_requires_is_in_the_catalogue(app: FastAPI) -> None:
    """A feature whose `Permission` class is missing from app/api/permissions.py fails here.

    Admin holds the catalogue, not whatever routes name: a permission left out
    of it would be a 403 for everyone, admin included.
    """
    required = {p for operation in api_operations(app) for p in operation.permissions}
    assert required
    assert all(isinstance(permission, Permission) for permission in required)

    assert sorted(required - CATALOGUE.everything) == []


def test_self_service_routes_require_a_signed_in_user(app: FastAPI) -> None:
    missing = [
        str(operation)
        for operation in api_operations(app)
        if operation.self_service and not operation.needs_principal
    ]

    assert missing == []


async def test_every_non_public_route_answers_an_anonymous_caller_with_401(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    guarded = [operation for operation in api_operations(app) if not operation.public]
    assert guarded

    wrong: list[str] = []
    for operation in guarded:
        for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
            response = await client.request(operation.method, operation.url(), headers=headers)
            if (
                response.status_code != 401
                or response.headers.get("www-authenticate") != "Bearer"
                or response.headers.get("content-type") != "application/problem+json"
            ):
                wrong.append(f"{operation} {headers}: {response.status_code}")

    assert wrong == []


async def test_every_route_needing_a_permission_members_lack_answers_a_member_with_403(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    seeded_grants: list[tuple[str, str]],
) -> None:
    """No body is sent: the permission check answers before the body is validated.

    So a caller without the permission learns nothing about what the route
    accepts, and this walk needs no per-route knowledge of request bodies.
    """
    member = await make_account()
    member_holds = {p for role, p in seeded_grants if role == "member"}
    beyond_a_member = [
        operation
        for operation in api_operations(app)
        if operation.permissions and not operation.permissions <= member_holds
    ]
    assert len(beyond_a_member) >= 9

    wrong: list[str] = []
    for operation in beyond_a_member:
        response = await client.request(operation.method, operation.url(), headers=member.headers)
        if (
            response.status_code != 403
            or response.json().get("type") != "urn:groundwork:problem:forbidden"
        ):
            wrong.append(f"{operation}: {response.status_code} {response.text[:120]}")

    assert wrong == []
    assert (await client.get("/api/v1/users/me", headers=member.headers)).status_code == 200
