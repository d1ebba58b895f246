"""Route dependencies that count each request against a named limit.

Declare a limit next to the route: `dependencies=[rate_limit(LimitName.LOGIN)]`.
What each name allows and how it is keyed is in app/core/ratelimit/rules.py;
the numbers come from settings. Every API route also counts against
`LimitName.DEFAULT` (see app/api/v1.py).
"""

from __future__ import annotations

from fastapi import Depends, Request, params

from app.core.errors import RateLimited
from app.core.metrics import RATE_LIMITED
from app.core.middleware.rate_limit_headers import record
from app.core.ratelimit import KeyedBy, LimitName, client_key
from app.core.resources import Resources, resources_of


class RateLimit:
    """Count the request; refuse it with 429 and Retry-After once the limit is used up."""

    __slots__ = ("name",)

    def __init__(self, name: LimitName) -> None:
        self.name = name

    async def __call__(self, request: Request) -> None:
        resources = resources_of(request)
        if not resources.settings.rate_limit_enabled:
            return
        limiter = resources.rate_limiter
        rule = limiter.rule(self.name)
        if rule.keyed_by is KeyedBy.CALLER:
            raise TypeError(f"limit {self.name} is keyed by its caller, not by the request")
        key = (
            _caller(request, resources)
            if rule.keyed_by is KeyedBy.USER_OR_CLIENT
            else ("client", _client(request))
        )
        decision = await limiter.hit(self.name, *key)
        record(request.scope, decision)
        if not decision.allowed:
            RATE_LIMITED.labels(limit=self.name).inc()
            raise RateLimited(
                f"Too many requests; retry in {decision.reset_after_seconds} s.",
                retry_after_seconds=decision.reset_after_seconds,
            )


def rate_limit(name: LimitName) -> params.Depends:
    """`Depends(...)` for a route's `dependencies=[...]`."""
    dependency: params.Depends = Depends(RateLimit(name))
    return dependency


def _client(request: Request) -> str:
    # Already the real client: the client-address middleware rewrote it.
    return client_key(request.client.host if request.client else None)


def _caller(request: Request, resources: Resources) -> tuple[str, str]:
    """The user of a valid bearer token, else the client address.

    Only the signature and claims are checked (no database), so the limit is
    applied before any real work; a token that fails this is counted against
    the client address, and the route itself will answer 401.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        subject = resources.token_subjects.subject_of(token.strip())
        if subject is not None:
            return ("user", subject)
    return ("client", _client(request))
