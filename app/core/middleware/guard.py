"""The answers the app did not write: past the deadline, a body too large, an unhandled error.

One layer, just inside the edge layer, keeps the three promises that each
need to see the whole request below them: the deadline (kept by
deadlines.py, answered by timeout.py) bounds the body reads and the handler
alike; the body limit (body_limit.py) counts every chunk the app reads; the
catch-all (errors.py) turns an exception that escaped every handler into a
problem+json 500. As three layers each wrapped
`send` and `receive` again, and the wrappers cost a cheap request more than
the checks themselves.

Nested as the layers were, outermost first: the deadline around the other
two, so a 413 or a 500 is itself written within it; the 413 before the 500,
since the refusal is an exception too. Being inside the edge layer, each of
these answers carries the request id and the edge's headers.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.deadlines import REQUEST_DEADLINE, Deadlines
from app.core.middleware.body_limit import BodyTooLarge, declared_length, route_limit, too_large
from app.core.middleware.errors import unhandled
from app.core.middleware.timeout import timed_out


class RequestGuardMiddleware:
    def __init__(self, app: ASGIApp, *, timeout_seconds: float, max_body_bytes: int) -> None:
        self.app = app
        self.deadlines = Deadlines(timeout_seconds)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        default_limit = self.max_body_bytes
        declared = declared_length(scope)
        received = 0
        body_complete = False
        reading_body = False
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, body_complete, reading_body
            # Read when the app reads, after routing: the matched route's own limit applies.
            if declared is not None and declared > (limit := route_limit(scope, default_limit)):
                raise BodyTooLarge(limit)
            reading_body = not body_complete
            # Left set if the deadline cancels the wait: that is how it is told apart.
            message = await receive()
            reading_body = False
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > (limit := route_limit(scope, default_limit)):
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    body_complete = True
            else:
                body_complete = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        deadline = self.deadlines.start()
        # For the steps below that the deadline must wait for (deps.request_session).
        scope[REQUEST_DEADLINE] = deadline
        try:
            try:
                await self.app(scope, guarded_receive, tracked_send)
            except BodyTooLarge as exc:
                # Reached only if no route handler rendered it (e.g. no route matched).
                if started:
                    raise
                await too_large(scope, exc)(scope, receive, tracked_send)
            except Exception:
                response = unhandled(scope)
                if started:
                    # Headers are gone already; the server closes the connection.
                    raise
                await response(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if not self.deadlines.caused(deadline):
                raise
            late = timed_out(scope, reading_body=reading_body, response_started=started)
            if late is not None:
                await late(scope, receive, send)
        finally:
            self.deadlines.finish(deadline)
