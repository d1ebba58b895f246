"""A deadline for every request: REQUEST_TIMEOUT_SECONDS from first byte to answer.

Past it the request is cancelled and answered with a problem: 408 when the
app was still waiting for the client's body (a slow or stalled upload), 504
when the server itself was too slow. Nothing hangs. If the answer had already
begun, it cannot be replaced; the connection is closed instead.

The deadline is kept by the guard layer (guard.py), around the body reads
and the handler alike; this module says what a missed deadline answers.
"""

from __future__ import annotations

import structlog
from starlette.responses import Response
from starlette.types import Scope

from app.core.errors import DomainError, GatewayTimeout, RequestTimeout, problem_response

log = structlog.get_logger(__name__)


def timed_out(scope: Scope, *, reading_body: bool, response_started: bool) -> Response | None:
    """Log a missed deadline; the problem to answer, or None once the answer has begun."""
    log.warning(
        "request.timed_out",
        path=scope["path"],
        waiting_for="client" if reading_body else "server",
        response_started=response_started,
    )
    if response_started:
        return None
    kind: type[DomainError] = RequestTimeout if reading_body else GatewayTimeout
    detail = (
        "The request body did not arrive in time."
        if reading_body
        else "No answer in time; the request may or may not have taken effect."
    )
    return problem_response(
        status=kind.status,
        slug=kind.slug,
        title=kind.title,
        detail=detail,
        instance=scope["path"],
        # The rest of a half-sent body would be read as the next request.
        headers={"Connection": "close"} if reading_body else None,
    )
