"""X-RateLimit-* on every answer of a limited route, errors included.

The route's limit dependency records its decision in the request scope; the
edge layer writes it onto whatever response leaves, so a 401, 404 or 500 from
a limited route tells the client its budget too.
"""

from __future__ import annotations

from starlette.types import Scope

from app.core.middleware.raw_headers import set_header
from app.core.ratelimit import Decision

SCOPE_KEY = "groundwork.rate_limit"


class TightestLimit:
    """The decision a client most needs to see when several limits apply to one route."""

    __slots__ = ("decision",)

    def __init__(self) -> None:
        self.decision: Decision | None = None

    def offer(self, decision: Decision) -> None:
        current = self.decision
        if current is None or _tighter(decision, current):
            self.decision = decision


def _tighter(candidate: Decision, current: Decision) -> bool:
    if candidate.allowed != current.allowed:
        return not candidate.allowed
    return (candidate.remaining, candidate.limit) < (current.remaining, current.limit)


def record(scope: Scope, decision: Decision) -> None:
    holder = scope.get(SCOPE_KEY)
    if isinstance(holder, TightestLimit):
        holder.offer(decision)


def write_limit_headers(headers: list[tuple[bytes, bytes]], decision: Decision) -> None:
    set_header(headers, b"x-ratelimit-limit", str(decision.limit).encode())
    set_header(headers, b"x-ratelimit-remaining", str(decision.remaining).encode())
    set_header(headers, b"x-ratelimit-reset", str(decision.reset_after_seconds).encode())
