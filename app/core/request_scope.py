"""The ASGI scope of the request being served, for code that holds no request.

Log processors run far from the endpoint; they read the route template from
here. FastAPI writes `scope["route"]` into the same dict once routing is done,
so the value appears as soon as it is known.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.types import Scope

_current: ContextVar[Scope | None] = ContextVar("request_scope", default=None)


def enter(scope: Scope) -> Token[Scope | None]:
    return _current.set(scope)


def leave(token: Token[Scope | None]) -> None:
    _current.reset(token)


def current() -> Scope | None:
    return _current.get()


def route_template(scope: Scope) -> str | None:
    """The matched route template (`/api/v1/items/{item_id}`); None before or without a match."""
    route: Any = scope.get("route")
    if route is None:
        return None
    templates = _templates(scope.get("app"), refresh=False)
    template = templates.get(id(route))
    if template is None:
        # A route added after the first request: learn the table again.
        template = _templates(scope.get("app"), refresh=True).get(id(route))
    if template is None:
        own = getattr(route, "path", None)
        return own if isinstance(own, str) else None
    return template


def _templates(app: Any, *, refresh: bool) -> dict[int, str]:
    """Route object -> full template, one table per app.

    `scope["route"]` is the route as declared, whose path lacks the prefixes
    of the routers it was included through; FastAPI's route contexts carry
    the effective path.
    """
    state = getattr(app, "state", None)
    if state is None:
        return {}
    table: dict[int, str] | None = getattr(state, "route_templates", None)
    if table is None or refresh:
        table = {}
        ambiguous: set[int] = set()
        for context in iter_route_contexts(getattr(app, "routes", [])):
            key, path = id(context.original_route), context.path_format
            if path is None:
                continue
            if table.setdefault(key, path) != path:
                # One router included under two prefixes: no single answer.
                ambiguous.add(key)
        for key in ambiguous:
            del table[key]
        state.route_templates = table
    return table
