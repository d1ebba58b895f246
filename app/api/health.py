"""Liveness and readiness, for orchestrators and load balancers."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter

from app.api.deps import ResourcesDep
from app.api.responses import problems
from app.core.errors import ServiceUnavailable
from app.db.engine import ping

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """The process serves requests; nothing else is checked."""
    return {"status": "ok"}


@router.get("/ready", responses=problems(503))
async def ready(resources: ResourcesDep) -> dict[str, str]:
    """Dependencies answer in time, and the process is not shutting down."""
    if resources.shutting_down:
        raise ServiceUnavailable("The server is shutting down.")
    try:
        async with asyncio.timeout(resources.settings.health_check_timeout_seconds):
            await ping(resources.engine)
    except Exception as exc:
        log.warning("health.database_unreachable", error=type(exc).__name__)
        raise ServiceUnavailable("The database did not answer in time.") from exc
    return {"status": "ok"}
