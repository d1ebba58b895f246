"""Turn an exception that escaped every handler into a problem+json 500."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import unhandled_error_response

log = structlog.get_logger(__name__)


class UnhandledErrorMiddleware:
    """Sits inside the request-id middleware so the 500 still carries the id.

    Starlette's own catch-all runs outside all user middleware, so its answer
    would miss the request id; this one answers first and logs the stack once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            log.exception("request.unhandled_error", path=scope.get("path"))
            if response_started:
                # Headers are gone already; the server closes the connection.
                raise
            response = unhandled_error_response(scope.get("path", ""))
            await response(scope, receive, send)
