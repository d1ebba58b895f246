"""A deadline for every request: REQUEST_TIMEOUT_SECONDS from first byte to answer.

Past it the request is cancelled and answered with a problem: 408 when the
app was still waiting for the client's body (a slow or stalled upload), 504
when the server itself was too slow. Nothing hangs. If the answer had already
begun, it cannot be replaced; the connection is closed instead.
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import DomainError, GatewayTimeout, RequestTimeout, problem_response
from app.core.middleware.tracked_send import TrackedSend

log = structlog.get_logger(__name__)


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, *, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        body_complete = False
        reading_body = False

        async def timed_receive() -> Message:
            nonlocal body_complete, reading_body
            reading_body = not body_complete
            # Left set if the deadline cancels the wait: that is how it is told apart.
            message = await receive()
            reading_body = False
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        tracked = TrackedSend(send)
        deadline = asyncio.timeout(self.timeout_seconds)
        try:
            async with deadline:
                await self.app(scope, timed_receive, tracked)
        except TimeoutError:
            if not deadline.expired():
                raise
            log.warning(
                "request.timed_out",
                path=scope["path"],
                waiting_for="client" if reading_body else "server",
                response_started=tracked.started,
            )
            if tracked.started:
                return
            kind: type[DomainError] = RequestTimeout if reading_body else GatewayTimeout
            detail = (
                "The request body did not arrive in time."
                if reading_body
                else "No answer in time; the request may or may not have taken effect."
            )
            response = problem_response(
                status=kind.status,
                slug=kind.slug,
                title=kind.title,
                detail=detail,
                instance=scope["path"],
                # The rest of a half-sent body would be read as the next request.
                headers={"Connection": "close"} if reading_body else None,
            )
            await response(scope, receive, send)
