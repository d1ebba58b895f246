"""CORS for the origins in CORS_ORIGINS, on Starlette's policy.

Starlette's CORSMiddleware decides (origins, methods, headers, credentials);
it is used here as the policy only, and the edge layer writes its headers in
its own single pass over the response. The one change to its behaviour: a
refused preflight is answered as problem+json, like every other error of this
API, instead of Starlette's text/plain.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from app.core.config import Settings
from app.core.errors import InvalidRequest, problem_response
from app.core.middleware.raw_headers import set_header, values_of

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
_VARY = b"vary"


class CorsPolicy:
    def __init__(self, settings: Settings) -> None:
        self._policy = CORSMiddleware(
            _never_called,
            allow_origins=settings.cors_origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=settings.cors_allow_credentials,
            expose_headers=EXPOSED_HEADERS,
        )
        self._simple = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self._policy.simple_headers.items()
        )

    def preflight(self, path: str, request_headers: Headers) -> Response:
        """The answer to a preflight (`OPTIONS` with Origin and Access-Control-Request-Method)."""
        answer = self._policy.preflight_response(request_headers=request_headers)
        if answer.status_code < 400:
            return answer
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name.startswith("access-control-") or name == "vary"
        }
        return problem_response(
            status=answer.status_code,
            slug=InvalidRequest.slug,
            title=InvalidRequest.title,
            # Starlette's text names what was refused: origin, method, headers.
            detail=bytes(answer.body).decode(),
            instance=path,
            headers=kept,
        )

    def write_headers(self, headers: list[tuple[bytes, bytes]], origin: bytes | None) -> None:
        """What Starlette's CORSMiddleware adds to an answer of the app (not a preflight)."""
        if origin is not None:
            for name, value in self._simple:
                set_header(headers, name, value)
            if self._mirrors(origin.decode("latin-1")):
                set_header(headers, b"access-control-allow-origin", origin)
        _vary_on_origin(headers)

    def _mirrors(self, origin: str) -> bool:
        """Whether the answer names the caller's origin rather than `*`."""
        policy = self._policy
        if policy.allow_all_origins:
            # Credentials may not be shared with `*`.
            return policy.allow_credentials
        return policy.is_allowed_origin(origin=origin)


def _vary_on_origin(headers: list[tuple[bytes, bytes]]) -> None:
    # As Starlette does: every Vary value so far, then Origin, in one header.
    present = values_of(headers, _VARY)
    if present:
        set_header(headers, _VARY, b", ".join([*present, b"Origin"]))
    else:
        headers.append((_VARY, b"Origin"))


async def _never_called(*_args: object) -> None:  # pragma: no cover - the policy wraps no app
    raise RuntimeError("the CORS policy is not an ASGI layer")
