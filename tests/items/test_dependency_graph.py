"""How many dependencies FastAPI solves for the authenticated items list, per request.

FastAPI solves a declared sub-dependency again wherever the graph names it,
cached or not, so each node in the tree is work done on every request.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

# The rate limit, the permission guard (the bearer scheme itself, which
# authenticates) and the item service; the last two read the request's
# session from the request rather than declaring it.
AUTHENTICATED_LIST_DEPENDENCIES = 3


def solved_nodes(dependant: Dependant) -> int:
    return sum(1 + solved_nodes(sub) for sub in dependant.dependencies)


def test_the_authenticated_item_list_solves_three_dependencies(app: FastAPI) -> None:
    [dependant] = [
        context.dependant
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and context.path == "/api/v1/items"
        and "GET" in (context.methods or ())
    ]
    assert solved_nodes(dependant) <= AUTHENTICATED_LIST_DEPENDENCIES
