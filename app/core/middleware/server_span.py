"""The server span of an HTTP request: W3C trace context in, one SERVER span, its route and status.

FastAPI's own telemetry does the same, but pays for it on every request
whether sampled or not: it walks the middleware stack, builds a `Headers`,
parses the authority and the query string into attributes, and wraps `send`
and `receive`. With traces sampled at a tenth, nine requests in ten pay that
for a span nobody sees. Here the span starts with the few attributes a
sampler may look at; the rest are written only on a span that records. The
edge layer starts it before the request's log context is bound (so every
line carries the trace id) and ends it once the answer is sent.

The attributes follow the HTTP server span conventions FastAPI writes:
`http.request.method`, `url.scheme`, `url.path`, `url.query` (signatures
redacted), `network.protocol.version`, `server.address`/`server.port`,
`http.route`, `http.response.status_code`, and `error.type` with an ERROR
status on a 5xx or an exception. The name is `METHOD /route/{template}`, or
the method alone when no route matched.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import Scope

from app.core import request_scope

_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY"}
)
# Query parameters that carry a credential in a signed URL (the semantic conventions' list).
_SENSITIVE_QUERY = frozenset(
    {"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "X-Goog-Signature"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}

RawHeaders = list[tuple[bytes, bytes]]


class _RawHeaderGetter(Getter[RawHeaders]):
    """Reads the propagators' headers straight from the ASGI scope's list."""

    def get(self, carrier: RawHeaders, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        if not values:
            return None
        if name == b"baggage":
            # The baggage propagator reads only the first value.
            return [",".join(values)]
        return values

    def keys(self, carrier: RawHeaders) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_GETTER = _RawHeaderGetter()

# What the W3C propagators (trace context and baggage, OTEL_PROPAGATORS'
# default) read. When they are the only ones configured and a request
# carries none of these headers, extracting finds nothing: the parent is an
# empty context, which is what the trace context propagator returns then.
_W3C_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
W3C_HEADERS = frozenset(name.encode("latin-1") for name in _W3C_FIELDS)


class IncomingContext:
    """`propagate.extract` of a request's headers; no propagator runs when there is none to read."""

    __slots__ = ("_textmap", "_w3c_only")

    def __init__(self) -> None:
        self._textmap: object = None
        self._w3c_only = False

    def of(self, headers: RawHeaders, *, w3c: bool) -> otel_context.Context:
        """`w3c`: whether the request carries any of W3C_HEADERS (the edge's one pass tells)."""
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            # Once per configured propagator: `fields` builds a new set each time.
            self._textmap, self._w3c_only = textmap, textmap.fields <= _W3C_FIELDS
        if self._w3c_only and not w3c:
            return otel_context.Context()
        return propagate.extract(headers, getter=_GETTER)


class ServerSpan:
    """One request's span, current while the request runs."""

    __slots__ = ("_method", "_span", "_token")

    @property
    def span(self) -> trace.Span:
        return self._span

    def __init__(
        self, tracer: trace.Tracer, scope: Scope, incoming: IncomingContext, *, w3c: bool
    ) -> None:
        method = scope["method"]
        known = method if method in _KNOWN_METHODS else "_OTHER"
        self._method = method if known == method else "HTTP"
        attributes: dict[str, Any] = {
            "http.request.method": known,
            "url.scheme": scope.get("scheme", "http"),
            "url.path": scope["path"],
        }
        if scope.get("http_version"):
            attributes["network.protocol.version"] = scope["http_version"]
        parent = incoming.of(scope["headers"], w3c=w3c)
        self._span = tracer.start_span(
            self._method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        if self._span.is_recording():
            self._span.set_attributes(_request_attributes(scope, method, known))
        self._token = otel_context.attach(trace.set_span_in_context(self._span, parent))

    def finish(self, scope: Scope, status: int, error: BaseException | None) -> None:
        """`status` is what was sent (500 when nothing was); `error` what escaped, if anything."""
        span = self._span
        try:
            if span.is_recording():
                route = request_scope.route_template(scope)
                if route is not None:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{self._method} {route}")
                span.set_attribute("http.response.status_code", status)
                if error is not None or status >= 500:
                    span.set_attribute("error.type", _error_type(error) if error else str(status))
                    span.set_status(StatusCode.ERROR)
            span.end()
        finally:
            otel_context.detach(self._token)


def _request_attributes(scope: Scope, method: str, known: str) -> dict[str, Any]:
    attributes = _server_address(scope)
    query: bytes = scope.get("query_string", b"")
    if query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        attributes["url.query"] = urlencode(
            [(key, "REDACTED" if key in _SENSITIVE_QUERY else value) for key, value in pairs]
        )
    if method != known:
        attributes["http.request.method_original"] = method
    return attributes


def _server_address(scope: Scope) -> dict[str, Any]:
    """`server.address` and `server.port` from the Host header, else the socket."""
    authority = next((value for name, value in scope["headers"] if name == b"host"), None)
    if authority is not None:
        try:
            url = urlsplit("//" + authority.decode("latin-1"))
            address, port = url.hostname, url.port
        except ValueError:
            return {}
        if url.username is not None or url.path or url.query or url.fragment:
            return {}
        if port is None:
            port = _DEFAULT_PORTS.get(scope.get("scheme", "http"))
    else:
        address, port = scope.get("server") or (None, None)
    if address is None:
        return {}
    attributes: dict[str, Any] = {"server.address": address}
    if port is not None:
        attributes["server.port"] = port
    return attributes


def _error_type(error: BaseException) -> str:
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"
