"""The process's one Redis client, when `REDIS_URL` is set.

Rate limits share it, and so can any feature that needs Redis: one
connection pool per process, closed by the lifespan. The default limit's
check, sent on every API request, also keeps a few connections of its own,
made by this pool (app/core/ratelimit/connections.py).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.core.config import Settings


def create_redis(settings: Settings) -> Redis | None:
    if not settings.redis_url:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        # No silent retries: a counter script run twice counts twice, and the
        # caller's own timeout decides how long Redis may take.
        retry=Retry(NoBackoff(), retries=0),
    )


async def ping(redis: Redis, timeout_seconds: float) -> None:
    """Raise unless Redis answers within the timeout."""
    async with asyncio.timeout(timeout_seconds):
        await redis.ping()
