"""Routers included flat (app/api/routing.py) serve what FastAPI's include_router would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import Match, Route

from app.api import health, metrics, v1
from app.api.routing import StaticPaths, include, index_static_paths


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, DefaultPlaceholder) else value


def shapes(app: FastAPI) -> list[dict[str, Any]]:
    """Each route as a request and the schema see it, in the order they are tried."""
    found = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue  # FastAPI's own /openapi.json and /docs
        found.append(
            {
                "path": context.path,
                "name": context.name,
                "methods": context.methods,
                "endpoint": context.endpoint,
                "unique_id": context.unique_id,
                "status_code": context.status_code,
                "tags": context.tags,
                "responses": context.responses,
                "response_model": context.response_model,
                "stream_item_type": context.stream_item_type,
                "is_json_stream": context.is_json_stream,
                "response_class": _plain(context.response_class),
                "include_in_schema": context.include_in_schema,
                "deprecated": context.deprecated,
                "max_body_size": context.max_body_size,
                "strict_content_type": _plain(context.strict_content_type),
                # The router-level rate limit first, then the route's own, in order.
                "dependencies": [d.dependency for d in context.dependencies],
                "calls": list(calls(context.dependant)),
                "overrides_from_app": context.dependency_overrides_provider is app,
            }
        )
    return found


class Tick(BaseModel):
    n: int


# A streamed response: FastAPI infers its item type from the endpoint.
streams = APIRouter(prefix="/streams", tags=["streams"])


@streams.get("/ticks")
async def ticks() -> AsyncIterator[Tick]:
    yield Tick(n=1)


ROUTERS = (health.router, metrics.router, v1.router, streams)


def nested() -> FastAPI:
    app = FastAPI()
    for router in ROUTERS:
        app.include_router(router)
    return app


def flat() -> FastAPI:
    app = FastAPI()
    for router in ROUTERS:
        include(app, router)
    return app


def test_flat_routes_are_the_routes_include_router_serves() -> None:
    served = shapes(nested())
    assert len(served) > 20
    assert shapes(flat()) == served


def test_flat_routes_document_the_same_schema() -> None:
    assert json.dumps(flat().openapi()) == json.dumps(nested().openapi())


def test_the_app_router_holds_plain_routes_only(app: FastAPI) -> None:
    """No nested router for a request to walk: each route is tried once, in one list."""
    index, *routes = app.router.routes
    assert isinstance(index, StaticPaths)
    assert all(isinstance(route, Route) for route in routes)


def test_every_fixed_path_is_found_without_a_scan(app: FastAPI) -> None:
    index, *routes = app.router.routes
    fixed = [r for r in routes if isinstance(r, Route) and "{" not in r.path]
    assert len(fixed) > 20
    for route in fixed:
        for method in route.methods or ():
            scope = {"type": "http", "path": route.path, "root_path": "", "method": method}
            assert index.matches(scope)[0] is Match.FULL, f"{method} {route.path}"


def indexed(router: APIRouter) -> httpx.AsyncClient:
    app = FastAPI()
    include(app, router)
    index_static_paths(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_index_picks_the_route_the_scan_would() -> None:
    """Routes are tried in order: a path with a parameter declared first wins its paths."""
    router = APIRouter(prefix="/things")

    @router.get("/{name}")
    async def by_name(name: str) -> str:
        return f"by name {name}"

    @router.get("/mine")
    async def mine_get() -> str:  # never reached: /{name} comes first
        return "mine"

    @router.post("/mine")
    async def mine_post() -> str:
        return "posted"

    async with indexed(router) as client:
        assert (await client.get("/things/mine")).json() == "by name mine"
        assert (await client.post("/things/mine")).json() == "posted"
        assert (await client.put("/things/mine")).status_code == 405
        assert (await client.get("/things/mine/")).status_code == 307
        assert (await client.get("/nothing")).status_code == 404


def test_url_path_for_names_the_flat_route(app: FastAPI) -> None:
    item_id = "0190a2b4-0000-7000-8000-000000000000"
    assert app.url_path_for("get_item", item_id=item_id) == f"/api/v1/items/{item_id}"


@pytest.mark.parametrize(
    "router",
    [
        APIRouter(on_startup=[lambda: None]),
        APIRouter(form_limits={"max_fields": 10}),
    ],
)
def test_what_a_flat_route_cannot_carry_is_refused(router: APIRouter) -> None:
    outer = APIRouter(prefix="/outer")
    outer.include_router(router)
    with pytest.raises(ValueError, match="does not carry"):
        include(FastAPI(), outer)
