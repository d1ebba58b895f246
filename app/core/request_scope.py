"""The ASGI scope of the request being served, for code that holds no request.

Log processors run far from the endpoint; they read the route template from
here. FastAPI writes `scope["route"]` into the same dict once routing is done,
so the value appears as soon as it is known.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from starlette.types import Scope

from app.core.routes import route_table

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
    app = scope.get("app")
    template = route_table(app).templates.get(id(route))
    if template is None:
        # A route added after the first request: learn the table again.
        template = route_table(app, refresh=True).templates.get(id(route))
    if template is None:
        own = getattr(route, "path", None)
        return own if isinstance(own, str) else None
    return template
