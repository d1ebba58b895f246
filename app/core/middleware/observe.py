"""Watch each request once: bind its log context, then write its access line and RED metrics.

One wrapper serves logs and metrics alike, so both see the same route,
status and duration, and the request pays for a single layer.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import structlog
from asgi_correlation_id import correlation_id
from opentelemetry import trace
from opentelemetry.trace import format_span_id, format_trace_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import request_scope
from app.core.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_PROGRESS,
    METRICS_PATH,
    UNMATCHED_ROUTE,
)

log = structlog.get_logger("app.access")

# Any other method a client invents becomes one label value, not a new series.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ObserveRequests:
    """Sits inside the request-id middleware (the id is known) and outside the
    error middleware (a crash is seen as the 500 it becomes)."""

    def __init__(self, app: ASGIApp, *, metrics_path: str = METRICS_PATH) -> None:
        self.app = app
        self.metrics_path = metrics_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        # Whatever an earlier request on this task bound (a user id) must not
        # leak into this one.
        structlog.contextvars.clear_contextvars()
        exemplar = _bind_request_context(scope)
        scope_token = request_scope.enter(scope)
        # A scrape is not traffic: counting it would skew every rate.
        counted = scope["path"] != self.metrics_path
        status = 500
        if counted:
            HTTP_REQUESTS_IN_PROGRESS.inc()
        started = perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = perf_counter() - started
            route = request_scope.route_template(scope) or UNMATCHED_ROUTE
            if counted:
                HTTP_REQUESTS_IN_PROGRESS.dec()
                HTTP_REQUESTS.labels(method, route, str(status)).inc()
                HTTP_REQUEST_DURATION.labels(method, route).observe(elapsed, exemplar)
            log.info(
                "http.request",
                route=route,
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            request_scope.leave(scope_token)
            structlog.contextvars.clear_contextvars()


def _bind_request_context(scope: Scope) -> dict[str, str] | None:
    """Bind what every line of this request carries; the exemplar for its latency sample."""
    client = scope.get("client")
    fields: dict[str, Any] = {
        "method": scope["method"],
        # Set by the client-address middleware from the trusted proxy chain.
        "client_ip": client[0] if client else None,
    }
    span = trace.get_current_span()
    context = span.get_span_context()
    exemplar = None
    if context.is_valid:
        fields["trace_id"] = format_trace_id(context.trace_id)
    if span.is_recording():
        # Only a recorded span can be found in the trace store.
        fields["span_id"] = format_span_id(context.span_id)
        exemplar = {"trace_id": fields["trace_id"]}
        request_id = correlation_id.get()
        if request_id is not None:
            span.set_attribute("request_id", request_id)
        if client:
            span.set_attribute("client.address", client[0])
    structlog.contextvars.bind_contextvars(**fields)
    return exemplar
