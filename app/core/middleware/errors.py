"""Turn an exception that escaped every handler into a problem+json 500."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import unhandled_error_response
from app.core.middleware.tracked_send import TrackedSend

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

        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("request.unhandled_error", path=scope.get("path"))
            if tracked.started:
                # Headers are gone already; the server closes the connection.
                raise
            response = unhandled_error_response(scope.get("path", ""))
            await response(scope, receive, send)
