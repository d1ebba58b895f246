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
here instead, and `max_body_size=` is not used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge, problem_response
from app.core.middleware.tracked_send import TrackedSend

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


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = _content_length(scope)
        received = 0

        def limit() -> int:
            route_limit = _route_limit(scope)
            return self.max_body_bytes if route_limit is None else route_limit

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit():
                raise BodyTooLarge(limit())
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit():
                    raise BodyTooLarge(limit())
            return message

        tracked = TrackedSend(send)
        try:
            await self.app(scope, limited_receive, tracked)
        except BodyTooLarge as exc:
            # Reached only if no route handler rendered it (e.g. no route matched).
            if tracked.started:
                raise
            response = problem_response(
                status=PayloadTooLarge.status,
                slug=PayloadTooLarge.slug,
                title=PayloadTooLarge.title,
                detail=exc.detail,
                instance=scope["path"],
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    # A malformed length never reaches the app: the server refuses the framing.
    return int(value) if value is not None and value.isdigit() else None
