"""The app's routes as clients address them: full templates, and the methods of each path.

Since FastAPI 0.137 an included router's routes keep the path they were
declared with, without the prefixes they were included under; FastAPI's
route contexts carry the effective path. One table per app, learnt on first
use and again when a route appears that it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path
from starlette.types import Scope

from app.core.app_state import state_value


@dataclass(slots=True)
class RouteTable:
    # id(route as declared) -> its full template, e.g. /api/v1/items/{item_id}.
    templates: dict[int, str] = field(default_factory=dict)
    # Each full path's regex with the methods its routes answer.
    methods: list[tuple[re.Pattern[str], frozenset[str]]] = field(default_factory=list)

    def methods_for(self, path: str) -> list[str]:
        """Every method some route answers at this path, sorted."""
        found: set[str] = set()
        for pattern, methods in self.methods:
            if pattern.match(path):
                found |= methods
        return sorted(found)


def route_path(scope: Scope) -> str:
    """The path routes are matched against: the request's, below the app's root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def route_table(app: Any, *, refresh: bool = False) -> RouteTable:
    state = getattr(app, "state", None)
    if state is None:
        return RouteTable()
    table: RouteTable | None = state_value(state, "route_table")
    if table is None or refresh:
        table = _learn(getattr(app, "routes", []))
        state.route_table = table
    return table


def _learn(routes: list[Any]) -> RouteTable:
    table = RouteTable()
    ambiguous: set[int] = set()
    for context in iter_route_contexts(routes):
        key, path = id(context.original_route), context.path_format
        if path is None:
            continue
        if table.templates.setdefault(key, path) != path:
            # One router included under two prefixes: no single answer.
            ambiguous.add(key)
        if context.methods and context.path:
            regex, _, _ = compile_path(context.path)
            table.methods.append((regex, frozenset(context.methods)))
    for key in ambiguous:
        del table.templates[key]
    return table
