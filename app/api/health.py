"""Liveness and readiness, for orchestrators and load balancers."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import structlog
from fastapi import APIRouter
from pydantic import BaseModel

from app.api.fixed_answers import fixed_answer
from app.api.openapi_edge import RETRY_AFTER
from app.core.errors import ServiceUnavailable
from app.core.redis import ping as redis_ping
from app.core.resources import Resources
from app.db.engine import ping
from app.web.deps import ResourcesDep
from app.web.responses import problems

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/health", tags=["health"])

# A replica that is stopping does not come back, and one whose database is
# away usually needs a few seconds: a probe or a client may ask again then.
RETRY_AFTER_SECONDS = 5
CheckStatus = Literal["ok", "unavailable"]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok"] = "ok"
    # One entry per configured dependency: `database` always, `redis` with REDIS_URL.
    checks: dict[str, CheckStatus]


def _ready_responses() -> dict[int | str, dict[str, Any]]:
    responses = problems(503)
    responses[503]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses


def _unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.get("/live")
@fixed_answer
async def live() -> Liveness:
    """Whether the process serves requests.

    No dependency is checked: a restart would not bring one back.
    """
    return Liveness()


@router.get("/ready", responses=_ready_responses())
async def ready(resources: ResourcesDep) -> Readiness:
    """Whether this replica can serve.

    It can while it is not stopping and the database answers in time.
    Redis is reported but does not decide: without it general limits fail
    open and security limits count per process, so the replica still serves.
    """
    if resources.shutting_down:
        raise _unavailable("The server is shutting down.")
    database, redis = await asyncio.gather(_database(resources), _redis(resources))
    if database != "ok":
        raise _unavailable("The database did not answer in time.")
    checks: dict[str, CheckStatus] = {"database": database}
    if redis is not None:
        checks["redis"] = redis
    return Readiness(checks=checks)


async def _database(resources: Resources) -> CheckStatus:
    try:
        async with asyncio.timeout(resources.settings.health_check_timeout_seconds):
            await ping(resources.probe_engine)
    except Exception as exc:
        log.warning("health.database_unreachable", error=type(exc).__name__)
        return "unavailable"
    return "ok"


async def _redis(resources: Resources) -> CheckStatus | None:
    if resources.redis is None:
        return None
    try:
        await redis_ping(resources.redis, resources.settings.health_check_timeout_seconds)
    except Exception as exc:
        log.warning("health.redis_unreachable", error=type(exc).__name__)
        return "unavailable"
    return "ok"
