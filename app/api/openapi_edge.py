"""The answers the edge layers can give, written into each operation of the schema.

Middleware answers before any route runs, and the validation handler turns
some of FastAPI's 422s into 415s, so FastAPI cannot see these; they are added
here so a generated client or a schema-driven fuzzer meets no
status the schema does not describe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from app.core.errors import PROBLEM_MEDIA_TYPE, Problem
from app.web.ratelimit import RateLimit

_PROBLEM_REF = "#/components/schemas/Problem"
_SECONDS = {"type": "integer", "minimum": 0}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": _SECONDS}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "Requests allowed per window by the limit closest to running out.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in that limit's current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Reset": {
        "description": "Seconds until that limit lets another request through.",
        "schema": _SECONDS,
    },
}


def document_edge_answers(schema: dict[str, Any], routes: Iterable[BaseRoute]) -> None:
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    # Route contexts carry what including routers added (the v1 default limit).
    limited = {
        (route.path_format, method.lower())
        for route in iter_route_contexts(list(routes))
        if isinstance(route.original_route, APIRoute) and _is_limited(route.dependant)
        for method in route.methods or ()
    }
    for path, path_item in schema.get("paths", {}).items():
        for method, operation in path_item.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            _add(responses, "400", "Bad Request: the Host header names a host not served here.")
            _add(responses, "504", "Gateway Timeout: no answer within REQUEST_TIMEOUT_SECONDS.")
            if "requestBody" in operation:
                _add(responses, "408", "Request Timeout: the body did not arrive in time.")
                _add(responses, "413", "Content Too Large: the body is over the size limit.")
                _add(
                    responses,
                    "415",
                    "Unsupported Media Type: the body is not of the media type this operation "
                    "reads (see `requestBody`).",
                )
            if (path, method) in limited:
                _add(responses, "429", "Too Many Requests: a rate limit is used up.", RETRY_AFTER)
                _add(responses, "503", "Service Unavailable.", RETRY_AFTER)
                for response in responses.values():
                    response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)


def _is_limited(dependant: Dependant) -> bool:
    return any(
        isinstance(dependency.call, RateLimit) or _is_limited(dependency)
        for dependency in dependant.dependencies
    )


def _add(responses: dict[str, Any], status: str, description: str, retry_after: Any = None) -> None:
    response = responses.setdefault(
        status,
        {
            "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}},
        },
    )
    if retry_after is not None:
        response.setdefault("headers", {})["Retry-After"] = retry_after
