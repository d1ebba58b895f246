"""Routers included flat: each route added to the app under its full path.

Since FastAPI 0.137 `include_router` keeps a tree: every request walks the
included routers in order, scans each one it enters, and matches the chosen
one a second time before handling it, setting and restoring scope keys for
every candidate. `include` asks FastAPI for the routes as it would serve them
(`iter_route_contexts`: full path, the including routers' dependencies first,
tags, responses, response class...) and adds each with `add_api_route`, so the
app router holds plain routes and a request tries each with one regex match.
The routes, their order, the OpenAPI document and `url_path_for` names stay
what `include_router` gives (tests/api/test_routing.py compares the two).
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, FastAPI
from fastapi.datastructures import Default
from fastapi.routing import APIRoute, iter_route_contexts
from starlette._utils import get_route_path
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send


def include(parent: FastAPI | APIRouter, router: APIRouter) -> None:
    """`parent.include_router(router)`, flat: `router`'s routes, nested ones too, join `parent`."""
    target = parent.router if isinstance(parent, FastAPI) else parent
    _refuse_what_would_be_lost(router)
    contexts = list(iter_route_contexts(router.routes))
    for context in contexts:
        if not isinstance(context.original_route, APIRoute) or context.path is None:
            raise TypeError(f"include() adds FastAPI path operations only, not {context!r}")
    for context in contexts:
        route, path = cast(APIRoute, context.original_route), cast(str, context.path)
        target.add_api_route(
            path,
            route.endpoint,
            # The model FastAPI settled on; inferred again where it found a stream item
            # (add_api_route takes no stream item type).
            response_model=(
                context.response_model if context.stream_item_type is None else Default(None)
            ),
            status_code=context.status_code,
            tags=list(context.tags),
            dependencies=list(context.dependencies),
            summary=context.summary,
            description=context.description,
            response_description=context.response_description,
            responses=dict(context.responses),
            deprecated=context.deprecated,
            methods=set(context.methods or ()),
            operation_id=context.operation_id,
            response_model_include=context.response_model_include,
            response_model_exclude=context.response_model_exclude,
            response_model_by_alias=context.response_model_by_alias,
            response_model_exclude_unset=context.response_model_exclude_unset,
            response_model_exclude_defaults=context.response_model_exclude_defaults,
            response_model_exclude_none=context.response_model_exclude_none,
            include_in_schema=context.include_in_schema,
            response_class=context.response_class,
            name=context.name,
            route_class_override=type(route),
            callbacks=list(context.callbacks or ()),
            openapi_extra=context.openapi_extra,
            generate_unique_id_function=context.generate_unique_id_function,
            strict_content_type=context.strict_content_type,
            max_body_size=context.max_body_size,
            form_limits=route.form_limits or None,
        )


def _refuse_what_would_be_lost(router: APIRouter) -> None:
    """What a router carries besides its routes has no place on a flat route: say so.

    A router's own lifespan is not carried either; FastAPI merges every included
    router's into its includer's, so it cannot be told apart here. The app's
    lifespan (app/main.py) is the one place for startup and shutdown.
    """
    for each in _routers(router):
        if each.on_startup or each.on_shutdown or each.form_limits:
            raise ValueError(
                "include() does not carry a router's event handlers or form limits: "
                "put them on the app (app/main.py) or on the routes"
            )


def _routers(router: APIRouter) -> list[APIRouter]:
    # An included router appears in `routes` as FastAPI's branch holding it.
    nested = (getattr(route, "original_router", None) for route in router.routes)
    return [router, *(r for n in nested if isinstance(n, APIRouter) for r in _routers(n))]


class StaticPaths(BaseRoute):
    """The route for a path without parameters, found by one lookup instead of a scan.

    A router tries its routes in order and takes the first that fully matches
    (path and method), so for a fixed path that answer is known in advance:
    it is worked out here, once, by asking each route in order, as the scan
    would. Anything not in the table (a path with parameters, a method no
    route takes, a trailing slash to redirect) finds no entry and goes on to
    the usual scan, so 404, 405 with Allow and redirects are FastAPI's own.
    Placed first in the app's routes, after every route is added; routes
    added later are appended, never ahead of one the table names, and the
    scan finds them. FastAPI's own telemetry (off here, app/core/tracing.py)
    would not see the template of a route chosen here; scope["route"], which
    the access log and the server span read, is set as before.
    """

    def __init__(self, routes: list[BaseRoute]) -> None:
        # Only the leading run of plain routes with known methods: a mount, an
        # included router or an any-method route may take any path it precedes.
        plain: list[Route] = []
        for route in routes:
            if not isinstance(route, Route) or not route.methods:
                break
            plain.append(route)
        self._table: dict[tuple[str, str], Route] = {}
        for path in dict.fromkeys(r.path for r in plain if "{" not in r.path):
            for route in plain:
                for method in route.methods or ():
                    probe = {"type": "http", "path": path, "root_path": "", "method": method}
                    if (path, method) not in self._table and route.matches(probe)[0] is Match.FULL:
                        self._table[(path, method)] = route

    def _route(self, scope: Scope) -> Route | None:
        if scope["type"] != "http":
            return None
        # The path as routes match it (below the root path), as Starlette computes it.
        return self._table.get((get_route_path(scope), scope["method"]))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        route = self._route(scope)
        return route.matches(scope) if route is not None else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope)
        assert route is not None, "handled only after it matched"
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # the routes themselves answer


def index_static_paths(app: FastAPI) -> None:
    """Put a `StaticPaths` of the app's routes in front of them."""
    app.router.routes.insert(0, StaticPaths(app.router.routes))
