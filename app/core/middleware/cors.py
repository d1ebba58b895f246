"""CORS for the origins in CORS_ORIGINS, on Starlette's (pure ASGI) implementation.

The one change: a refused preflight is answered as problem+json, like every
other error of this API, instead of Starlette's text/plain.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import InvalidRequest, problem_response

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE")
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
    "traceparent",
    "tracestate",
)
# What a browser script may read from a cross-origin answer.
EXPOSED_HEADERS = (
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "ETag",
    "Location",
    "Idempotent-Replayed",
    "WWW-Authenticate",
)


class ProblemCORSMiddleware(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        super().__init__(
            app,
            allow_origins=settings.cors_origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=settings.cors_allow_credentials,
            expose_headers=EXPOSED_HEADERS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                preflight = self.preflight_response(request_headers=headers)
                if preflight.status_code >= 400:
                    kept = {
                        name: value
                        for name, value in preflight.headers.items()
                        if name.startswith("access-control-") or name == "vary"
                    }
                    preflight = problem_response(
                        status=preflight.status_code,
                        slug=InvalidRequest.slug,
                        title=InvalidRequest.title,
                        # Starlette's text names what was refused: origin, method, headers.
                        detail=bytes(preflight.body).decode(),
                        instance=scope["path"],
                        headers=kept,
                    )
                await preflight(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
