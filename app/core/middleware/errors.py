"""Turn an exception that escaped every handler into a problem+json 500.

Starlette's own catch-all runs outside all user middleware, so its answer
would miss the request id and the edge's headers; the guard layer (guard.py),
inside the edge layer, answers first with this and logs the stack once.
"""

from __future__ import annotations

import structlog
from starlette.responses import Response
from starlette.types import Scope

from app.core.errors import unhandled_error_response

log = structlog.get_logger(__name__)


def unhandled(scope: Scope) -> Response:
    """Log the exception being handled, with its stack; the 500 to answer."""
    log.exception("request.unhandled_error", path=scope.get("path"))
    return unhandled_error_response(scope.get("path", ""))
