"""Pure ASGI middleware and the one list that fixes their order.

Starlette's base class for HTTP middleware (what `@app.middleware("http")`
builds) costs about 200 µs per request per layer on this stack; each
middleware here is a plain ASGI callable instead.
"""

from __future__ import annotations

from starlette.middleware import Middleware

from app.core.config import Settings
from app.core.middleware.body_limit import BodyLimitMiddleware
from app.core.middleware.client_address import ClientAddressMiddleware
from app.core.middleware.cors import ProblemCORSMiddleware
from app.core.middleware.drain import CloseWhileDrainingMiddleware
from app.core.middleware.errors import UnhandledErrorMiddleware
from app.core.middleware.observe import ObserveRequests
from app.core.middleware.rate_limit_headers import RateLimitHeadersMiddleware
from app.core.middleware.request_id import request_id_middleware
from app.core.middleware.security_headers import SecurityHeadersMiddleware
from app.core.middleware.timeout import RequestTimeoutMiddleware
from app.core.middleware.trusted_host import TrustedHostMiddleware


def build_middleware(settings: Settings) -> list[Middleware]:
    """Outermost first. Each line says why it sits where it does."""
    return [
        # Outermost, so while the server drains every answer, whichever layer
        # wrote it, tells its client to reconnect elsewhere.
        Middleware(CloseWhileDrainingMiddleware),
        # First after that, so every response — including a 500 — carries X-Request-ID
        # and everything below can log it.
        request_id_middleware(),
        # Before anything that records who is calling (the access log, audit,
        # rate limits): they all read the client it works out from
        # TRUSTED_PROXIES.
        Middleware(
            ClientAddressMiddleware,
            trusted_proxies=settings.trusted_proxies,
            header=settings.trusted_proxy_header,
        ),
        # Inside the request id and the real client address, outside every
        # layer that can answer early (limits, errors), so each answer gets
        # its one access line and its metrics.
        Middleware(ObserveRequests),
        # Outside every layer that may refuse a request, so refusals (bad
        # host, 413, 408/504, 429, 500) carry the hardening headers too.
        Middleware(SecurityHeadersMiddleware, hsts=settings.is_production),
        # Early and cheap: a request for a host we do not serve does no work.
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts),
        # Outside the limits, the timeout and the size check, so a browser can
        # read those refusals; preflights are answered here without touching the app.
        Middleware(ProblemCORSMiddleware, settings=settings),
        # Writes the decision of the route's limit dependency onto whatever
        # answer leaves, errors included.
        Middleware(RateLimitHeadersMiddleware),
        # Bounds everything below, reading the body included, so a stalled
        # upload or a stuck handler ends in a 408/504 problem instead of hanging.
        Middleware(RequestTimeoutMiddleware, timeout_seconds=settings.request_timeout_seconds),
        # Checked at read time, after routing, so a route's own `@max_body_bytes`
        # applies; under the timeout, so a trickled body is cut by the deadline.
        Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes),
        # Last, so an exception anywhere below becomes a problem+json 500
        # while the request id is still bound.
        Middleware(UnhandledErrorMiddleware),
    ]
