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

from typing import cast

from fastapi import APIRouter, FastAPI
from fastapi.datastructures import Default
from fastapi.routing import APIRoute, iter_route_contexts


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
