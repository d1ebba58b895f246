"""Routes whose answer never changes, rendered by FastAPI once and then sent as they are.

FastAPI handles every request to a route in full: it builds a `Request`, two
exit stacks, solves the (empty) dependencies, calls the endpoint, validates
and serialises its model and builds a response. For `/health/live`, which
every probe of every replica calls and whose answer is always the same,
that was close to a third of the request's instructions. A route marked
`@fixed_answer` is handled by FastAPI until it answers 2xx once; that
answer's status, headers and body are then sent for every later request. Everything around the route
is unchanged: the middleware (request id, access line, metrics, span,
hardening headers, deadline) sees each request, the route still matches and
sets `scope["route"]`, and OpenAPI documents it from the endpoint as before.

Only an endpoint that reads nothing of the request can be marked: no
parameters, no dependencies; `serve_fixed_answers` refuses any other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__fixed_answer__"
Answer = tuple[int, tuple[tuple[bytes, bytes], ...], bytes]


def fixed_answer(endpoint: F) -> F:
    """Mark a path operation whose answer is the same for every request (put it under the route)."""
    setattr(endpoint, _MARK, True)
    return endpoint


def serve_fixed_answers(app: FastAPI) -> None:
    """Have each marked route of `app` send its first 2xx answer again instead of rendering it."""
    for route in app.router.routes:
        if isinstance(route, APIRoute) and getattr(route.endpoint, _MARK, False):
            if route.dependencies or inspect.signature(route.endpoint).parameters:
                raise TypeError(
                    f"{route.path}: a fixed answer cannot depend on the request "
                    "(its endpoint takes parameters or the route has dependencies)"
                )
            route.app = AnswerOnce(route.app)


class AnswerOnce:
    """A route's handler, until it has given an answer that can be sent again."""

    __slots__ = ("_answer", "_handler")

    def __init__(self, handler: ASGIApp) -> None:
        self._handler = handler
        self._answer: Answer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._answer
        if answer is not None:
            status, headers, body = answer
            # Fresh messages each time: the layers above add their own headers to them.
            await send({"type": "http.response.start", "status": status, "headers": list(headers)})
            await send({"type": "http.response.body", "body": body})
            return
        sent: list[Message] = []

        async def recording(message: Message) -> None:
            # As sent, before any layer above adds its headers to it.
            kept = dict(message)
            if "headers" in kept:
                kept["headers"] = tuple(kept["headers"])
            sent.append(kept)
            await send(message)

        await self._handler(scope, receive, recording)
        self._answer = _replayable(sent)


def _replayable(sent: list[Message]) -> Answer | None:
    """A 2xx answer sent whole (one start, then its body, no trailers); None for anything else."""
    if not sent or sent[0]["type"] != "http.response.start":
        return None
    start, chunks = sent[0], sent[1:]
    if not 200 <= start["status"] < 300 or start.get("trailers", False):
        return None
    if not chunks or any(chunk["type"] != "http.response.body" for chunk in chunks):
        return None
    if chunks[-1].get("more_body", False):
        return None
    body = b"".join(chunk.get("body", b"") for chunk in chunks)
    return start["status"], start.get("headers", ()), body
