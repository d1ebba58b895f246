"""Liveness and readiness, for orchestrators and load balancers."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter

from app.api.deps import ResourcesDep
from app.api.responses import problems
from app.core.errors import ServiceUnavailable
from app.core.redis import ping as redis_ping
from app.db.engine import ping

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """The process serves requests; nothing else is checked."""
    return {"status": "ok"}


@router.get("/ready", responses=problems(503))
async def ready(resources: ResourcesDep) -> dict[str, str]:
    """The database (and Redis, if configured) answer in time; the process is not stopping."""
    if resources.shutting_down:
        raise ServiceUnavailable("The server is shutting down.")
    try:
        async with asyncio.timeout(resources.settings.health_check_timeout_seconds):
            await ping(resources.engine)
    except Exception as exc:
        log.warning("health.database_unreachable", error=type(exc).__name__)
        raise ServiceUnavailable("The database did not answer in time.") from exc
    if resources.redis is not None:
        try:
            await redis_ping(resources.redis, resources.settings.health_check_timeout_seconds)
        except Exception as exc:
            # Rate limits then follow RATE_LIMIT_FAIL_OPEN; the replica reports it.
            log.warning("health.redis_unreachable", error=type(exc).__name__)
            raise ServiceUnavailable("Redis did not answer in time.") from exc
    return {"status": "ok"}
