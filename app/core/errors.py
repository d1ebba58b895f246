"""Domain errors and their RFC 9457 problem+json rendering.

Services raise the exceptions below; `install_error_handlers` registers the one
handler family that turns them (and framework errors) into problem documents.
Each `type` is documented in docs/errors.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.outages import DATABASE_ERRORS, database_outage, driver_error_name, sqlstate_of
from app.core.routes import route_path, route_table

PROBLEM_TYPE_PREFIX = "urn:groundwork:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger(__name__)


class DomainError(Exception):
    """An outcome a client can act on; rendered as a problem, never logged as a crash."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})


class InvalidRequest(DomainError):
    slug = "bad-request"
    title = "Bad request"


class InvalidCursor(DomainError):
    slug = "invalid-cursor"
    title = "Invalid pagination cursor"


class Unauthorized(DomainError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(DomainError):
    status = 401
    slug = "invalid-credentials"
    title = "Incorrect email or password"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class PreconditionFailed(DomainError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class Unprocessable(DomainError):
    status = 422
    slug = "unprocessable"
    title = "The request cannot be applied"


class InvalidToken(DomainError):
    slug = "invalid-token"
    title = "Invalid or expired token"


class IdempotencyKeyReused(DomainError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with a different request"


class ServiceUnavailable(DomainError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        if retry_after_seconds is not None:
            headers = {**(headers or {}), "Retry-After": str(max(1, retry_after_seconds))}
        super().__init__(detail, headers=headers)


class Problem(BaseModel):
    """RFC 9457 problem details, as every error body of this API."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(Problem):
    """A 422: request validation lists `errors`; other 422s (e.g. a reused key) do not."""

    errors: list[ValidationIssue] | None = None


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_PREFIX + slug


def problem_response(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": correlation_id.get(),
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


class PayloadTooLarge(DomainError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class MethodNotAllowed(DomainError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class UnsupportedMediaType(DomainError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class RequestTimeout(DomainError):
    status = 408
    slug = "request-timeout"
    title = "Request timeout"


class RateLimited(DomainError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int) -> None:
        # Retry-After is whole seconds; 0 would invite an immediate retry storm.
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_seconds))})


class GatewayTimeout(DomainError):
    status = 504
    slug = "gateway-timeout"
    title = "Gateway timeout"


def _by_status() -> dict[int, type[DomainError]]:
    """One (slug, title) per status for framework errors, shared with the domain's."""
    kinds: dict[int, type[DomainError]] = {}
    for kind in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PreconditionFailed,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        ServiceUnavailable,
        GatewayTimeout,
    ):
        kinds[kind.status] = kind
    return kinds


_HTTP_ERRORS = _by_status()


def _status_slug_and_title(status: int) -> tuple[str, str]:
    kind = _HTTP_ERRORS.get(status)
    if kind is not None:
        return kind.slug, kind.title
    try:
        return f"http-{status}", HTTPStatus(status).phrase
    except ValueError:
        return f"http-{status}", "Error"


def _validation_issues(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Only loc/msg/type: pydantic's `input` and `ctx` may echo a password back.
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error["type"]}
        for error in errors
    ]


async def _domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        headers=exc.headers,
    )


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _status_slug_and_title(exc.status_code)
    # Starlette's detail is its status phrase, or for a 400 a parser message.
    phrase = HTTPStatus(exc.status_code).phrase if exc.status_code in _HTTP_ERRORS else None
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else title
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names only the methods of the first route at this path;
        # Allow must list every method the path answers (RFC 9110 §15.5.6).
        allowed = route_table(request.app).methods_for(route_path(request.scope))
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return problem_response(
        status=exc.status_code,
        slug=slug,
        title=title,
        detail=detail,
        instance=request.url.path,
        headers=headers,
    )


JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_READS_JSON = f"This operation reads a JSON body: send it with `Content-Type: {JSON_MEDIA_TYPE}`."
_READS_FORM = (
    f"This operation reads a form: send it with `Content-Type: {FORM_MEDIA_TYPES[0]}` "
    f"(or `{FORM_MEDIA_TYPES[1]}`)."
)


def unsupported_body(request: Request) -> UnsupportedMediaType | None:
    """The 415 for a body of a media type the route does not read, else None.

    FastAPI does not refuse such a body: it reads a form sent as JSON as an
    empty form and JSON sent as text as raw bytes, and reports the fields as
    missing or malformed, which hides the mistake from the caller.
    """
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is None or not _has_body(request):
        return None
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if isinstance(body_field.field_info, params.Form):
        return None if media_type in FORM_MEDIA_TYPES else UnsupportedMediaType(_READS_FORM)
    # The media types FastAPI parses as JSON.
    if media_type == JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return None
    return UnsupportedMediaType(_READS_JSON)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "transfer-encoding" in request.headers


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only a request that failed validation is checked: a body in the wrong
    # media type always does, and the answer then names the real mistake.
    unsupported = unsupported_body(request)
    if unsupported is not None:
        return await _domain_error_handler(request, unsupported)
    return problem_response(
        status=422,
        slug="validation-error",
        title="Request validation failed",
        detail="The request does not match the schema; see `errors`.",
        instance=request.url.path,
        extra={"errors": _validation_issues(exc.errors())},
    )


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    outage = database_outage(exc)
    if outage is None:
        # Not an outage: the crash handler answers 500 and logs the stack.
        raise exc
    # The reason and the driver's error name only: the message of a
    # database error carries SQL text.
    log.warning(
        "database.unavailable",
        reason=outage.reason,
        error=driver_error_name(exc),
        sqlstate=sqlstate_of(getattr(exc, "orig", None)),
    )
    return await _domain_error_handler(
        request,
        ServiceUnavailable(outage.detail, retry_after_seconds=outage.retry_after_seconds),
    )


def unhandled_error_response(path: str) -> JSONResponse:
    return problem_response(
        status=500,
        slug="internal-error",
        title="Internal server error",
        detail="An unexpected error occurred; quote the request id when reporting it.",
        instance=path,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    # Database outages, in one place: whatever layer meets them, the client
    # gets 503 with Retry-After, never a 500.
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_error_handler)
