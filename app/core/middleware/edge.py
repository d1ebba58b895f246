"""The edge of every request, in one ASGI layer with one pass over `send`.

Each concern here only reads the request or adds headers to the answer; as
separate layers each would wrap `send` again, and the wrappers cost a cheap
request (a health probe) more than its own work. In the order they apply:

1. the real client address, from TRUSTED_PROXIES (client_address.py), before
   anything records who is calling;
2. the request id (request_id.py), before anything logs;
3. the server span (server_span.py), continuing an incoming W3C
   `traceparent`, current while the request runs; `/metrics` scrapes get none;
4. the observation (observe.py): log context now, the access line and the
   metrics once the answer is sent; every answer below is seen, refusals too;
5. the Host check (trusted_host.py): a host we do not serve does no work;
6. a CORS preflight is answered here without touching the app (cors.py).

On the way out, onto the answer's status line, in one pass: the route's
X-RateLimit-* (rate_limit_headers.py) and the CORS headers on answers of the
app below; the hardening headers (security_headers.py), X-Request-ID, and
`Connection: close` while draining (drain.py) on every answer, a refusal made
here included.
"""

from __future__ import annotations

from opentelemetry import trace
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.metrics import METRICS_PATH
from app.core.middleware.client_address import ClientAddresses
from app.core.middleware.cors import CorsPolicy
from app.core.middleware.drain import close_if_draining
from app.core.middleware.observe import Observation
from app.core.middleware.rate_limit_headers import SCOPE_KEY, TightestLimit, write_limit_headers
from app.core.middleware.raw_headers import add_missing
from app.core.middleware.request_id import REQUEST_ID_HEADER, assign_request_id
from app.core.middleware.security_headers import security_headers
from app.core.middleware.server_span import W3C_HEADERS, IncomingContext, ServerSpan
from app.core.middleware.trusted_host import TrustedHosts, wrong_host

_HOST = b"host"
_ORIGIN = b"origin"
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode("latin-1")
_PREFLIGHT_METHOD = b"access-control-request-method"
_READ = frozenset({_HOST, _ORIGIN, _REQUEST_ID, _PREFLIGHT_METHOD, *W3C_HEADERS})


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        tracer: trace.Tracer | None = None,
        observe: bool = True,
    ) -> None:
        """`tracer` None: no server spans (tracing off); `observe=False` leaves out
        the access line and metrics (a benchmark's baseline)."""
        self.app = app
        self.tracer = tracer
        self.incoming = IncomingContext()
        self.addresses = ClientAddresses(settings.trusted_proxies, settings.trusted_proxy_header)
        self.hosts = TrustedHosts(settings.trusted_hosts)
        self.cors = CorsPolicy(settings)
        self.hardening = security_headers(hsts=settings.is_production)
        self.hardening_names = frozenset(name for name, _ in self.hardening)
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.addresses.rewrite(scope)
        read = _read_headers(scope)
        assigned = assign_request_id(scope, read.get(_REQUEST_ID))
        request_id = (_REQUEST_ID, assigned.encode())
        path: str = scope["path"]
        span = (
            ServerSpan(self.tracer, scope, self.incoming, w3c=not W3C_HEADERS.isdisjoint(read))
            if self.tracer is not None and path != METRICS_PATH
            else None
        )
        observation = (
            Observation(
                scope, assigned, span.span if span is not None else trace.get_current_span()
            )
            if self.observe
            else None
        )
        origin = read.get(_ORIGIN)
        limits = TightestLimit()
        from_app = False
        status = 500

        async def send_edge(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if from_app:
                    if limits.decision is not None:
                        write_limit_headers(headers, limits.decision)
                    self.cors.write_headers(headers, origin)
                add_missing(headers, self.hardening, self.hardening_names)
                headers.append(request_id)
                close_if_draining(headers, scope.get("app"))
                message["headers"] = headers
            await send(message)

        error: BaseException | None = None
        try:
            if not self.hosts.serves(path, read.get(_HOST)):
                await wrong_host(path)(scope, receive, send_edge)
            elif scope["method"] == "OPTIONS" and origin is not None and _PREFLIGHT_METHOD in read:
                await self.cors.preflight(path, Headers(scope=scope))(scope, receive, send_edge)
            else:
                scope[SCOPE_KEY] = limits
                from_app = True
                await self.app(scope, receive, send_edge)
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                if observation is not None:
                    observation.finish(status)
            finally:
                if span is not None:
                    span.finish(scope, status, error)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.addresses.rewrite(scope)
        read = _read_headers(scope)
        assign_request_id(scope, read.get(_REQUEST_ID))
        if not self.hosts.serves(scope.get("path", ""), read.get(_HOST)):
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


def _read_headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each request header the edge reads, in one pass."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _READ and name not in found:
            found[name] = value
    return found
