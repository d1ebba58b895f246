"""X-RateLimit-* on every answer of a limited route, errors included.

The route's limit dependency records its decision in the request scope; this
layer writes it onto whatever response leaves, so a 401, 404 or 500 from a
limited route tells the client its budget too.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.ratelimit import Decision

SCOPE_KEY = "groundwork.rate_limit"


class TightestLimit:
    """The decision a client most needs to see when several limits apply to one route."""

    __slots__ = ("decision",)

    def __init__(self) -> None:
        self.decision: Decision | None = None

    def offer(self, decision: Decision) -> None:
        current = self.decision
        if current is None or _tighter(decision, current):
            self.decision = decision


def _tighter(candidate: Decision, current: Decision) -> bool:
    if candidate.allowed != current.allowed:
        return not candidate.allowed
    return (candidate.remaining, candidate.limit) < (current.remaining, current.limit)


def record(scope: Scope, decision: Decision) -> None:
    holder = scope.get(SCOPE_KEY)
    if isinstance(holder, TightestLimit):
        holder.offer(decision)


class RateLimitHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder = TightestLimit()
        scope[SCOPE_KEY] = holder

        async def send_with_limits(message: Message) -> None:
            decision = holder.decision
            if message["type"] == "http.response.start" and decision is not None:
                headers = MutableHeaders(scope=message)
                headers["X-RateLimit-Limit"] = str(decision.limit)
                headers["X-RateLimit-Remaining"] = str(decision.remaining)
                headers["X-RateLimit-Reset"] = str(decision.reset_after_seconds)
            await send(message)

        await self.app(scope, receive, send_with_limits)
