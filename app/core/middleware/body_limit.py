"""Request bodies over MAX_BODY_BYTES get a problem+json 413, before they are read whole.

A declared Content-Length over the limit is refused at the first read, so
not one byte of it is taken in (nor is `100 Continue` sent); a body without
one (chunked) is counted as it streams and cut as soon as it passes the limit.

A route may set its own limit, up or down, with `@max_body_bytes(n)` on its
endpoint: the check happens at read time, after routing, so the matched
route is known.

Starlette's RequestBodyLimitMiddleware (behind FastAPI's `max_body_size=`)
counts the same way but answers text/plain, from outside the app's error
handlers; every error of this API is problem+json, so the limit is enforced
here instead, and `max_body_size=` is not used. The guard layer (guard.py)
counts; this module says what the limit is and what going over it answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from app.core.errors import PayloadTooLarge, problem_response

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_ROUTE_LIMIT = "__max_body_bytes__"


def max_body_bytes(limit: int) -> Callable[[Endpoint], Endpoint]:
    """Give one route its own body limit, above or below MAX_BODY_BYTES."""
    if limit < 0:
        raise ValueError("a body limit cannot be negative")

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _ROUTE_LIMIT, limit)
        return endpoint

    return mark


def _route_limit(scope: Scope) -> int | None:
    endpoint = getattr(scope.get("route"), "endpoint", None)
    limit = getattr(endpoint, _ROUTE_LIMIT, None)
    return limit if isinstance(limit, int) else None


class BodyTooLarge(HTTPException):
    """An HTTPException, so the route's error handlers render it while it reads the body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"The request body is larger than {limit} bytes.")


def route_limit(scope: Scope, default: int) -> int:
    """The body limit of the matched route: its own, else `default` (MAX_BODY_BYTES)."""
    limit = _route_limit(scope)
    return default if limit is None else limit


def too_large(scope: Scope, exc: BodyTooLarge) -> Response:
    """The 413 when no route handler rendered the refusal (e.g. no route matched)."""
    return problem_response(
        status=PayloadTooLarge.status,
        slug=PayloadTooLarge.slug,
        title=PayloadTooLarge.title,
        detail=exc.detail,
        instance=scope["path"],
        headers={"Connection": "close"},
    )


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length; None when it has none."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            # A malformed length never reaches the app: the server refuses the framing.
            return int(value) if value.isdigit() else None
    return None
