"""Watch each request once: bind its log context, then write its access line and RED metrics.

One observation serves logs and metrics alike, so both see the same route,
status and duration. The edge layer starts it once the request id and the
real client address are known, and finishes it when the answer is sent or
the request fails.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from time import perf_counter
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import format_span_id, format_trace_id
from starlette.types import Scope
from structlog.contextvars import _CONTEXT_VARS as _STRUCTLOG_VARS
from structlog.contextvars import STRUCTLOG_KEY_PREFIX

from app.core import request_scope
from app.core.metrics import (
    HTTP_REQUESTS_IN_PROGRESS,
    METRICS_PATH,
    UNMATCHED_ROUTE,
    request_series,
)

log = structlog.get_logger("app.access")

# Any other method a client invents becomes one label value, not a new series.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Observation:
    """One request, from its first byte to its answer."""

    __slots__ = ("_counted", "_exemplar", "_method", "_scope", "_scope_token", "_started")

    def __init__(
        self,
        scope: Scope,
        request_id: str,
        span: trace.Span,
        *,
        metrics_path: str = METRICS_PATH,
    ) -> None:
        """`span`: the request's server span, current while it runs."""
        self._scope = scope
        self._method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        # Whatever an earlier request on this task bound (a user id) must not
        # leak into this one.
        _clear_log_context()
        self._exemplar = _bind_request_context(scope, request_id, span)
        self._scope_token: Token[Scope | None] = request_scope.enter(scope)
        # A scrape is not traffic: counting it would skew every rate.
        self._counted = scope["path"] != metrics_path
        if self._counted:
            HTTP_REQUESTS_IN_PROGRESS.inc()
        self._started = perf_counter()

    def finish(self, status: int) -> None:
        """The access line and the metrics; `status` is 500 for an answer never begun."""
        elapsed = perf_counter() - self._started
        scope = self._scope
        route = request_scope.route_template(scope) or UNMATCHED_ROUTE
        if self._counted:
            HTTP_REQUESTS_IN_PROGRESS.dec()
            requests, duration = request_series(self._method, route, status)
            requests.inc()
            duration.observe(elapsed, self._exemplar)
        log.info(
            "http.request",
            route=route,
            path=scope["path"],
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )
        request_scope.leave(self._scope_token)
        _clear_log_context()


def _log_variable(key: str) -> ContextVar[Any]:
    """structlog's context variable for `key`, made as `bind_contextvars` makes it."""
    name = STRUCTLOG_KEY_PREFIX + key
    var = _STRUCTLOG_VARS.get(name)
    if var is None:
        var = _STRUCTLOG_VARS[name] = ContextVar(name, default=Ellipsis)
    return var


# What every request binds, set straight on structlog's own variables:
# `bind_contextvars` builds each variable's name and finds it on every call.
_METHOD = _log_variable("method")
_CLIENT_IP = _log_variable("client_ip")
_TRACE_ID = _log_variable("trace_id")
_SPAN_ID = _log_variable("span_id")


def _clear_log_context() -> None:
    """`structlog.contextvars.clear_contextvars()`, setting only what is bound.

    structlog's own sets every log variable this task ever bound, bound now
    or not; each set copies the context. Its variables are few, each read
    in one call; the context holds more.
    """
    for var in tuple(_STRUCTLOG_VARS.values()):
        if var.get() is not Ellipsis:
            var.set(Ellipsis)


def _bind_request_context(scope: Scope, request_id: str, span: trace.Span) -> dict[str, str] | None:
    """Bind what every line of this request carries; the exemplar for its latency sample."""
    client = scope.get("client")
    _METHOD.set(scope["method"])
    # Set by the client-address step from the trusted proxy chain.
    _CLIENT_IP.set(client[0] if client else None)
    context = span.get_span_context()
    if not context.is_valid:
        return None
    trace_id = format_trace_id(context.trace_id)
    _TRACE_ID.set(trace_id)
    if not span.is_recording():
        return None
    # Only a recorded span can be found in the trace store.
    _SPAN_ID.set(format_span_id(context.span_id))
    span.set_attribute("request_id", request_id)
    if client:
        span.set_attribute("client.address", client[0])
    return {"trace_id": trace_id}
