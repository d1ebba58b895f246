"""Long-lived collaborators, built once per process by the lifespan (or the CLI).

Services receive this object instead of a growing list of arguments; nothing
in it is created at import time, so every app instance owns its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.core.config import Settings
from app.core.mail import Mailer, create_mailer
from app.core.pagination import CursorCodec
from app.core.ratelimit import RateLimiter, rules_from
from app.core.ratelimit.subjects import TokenSubjects
from app.core.redis import create_redis
from app.core.security.passwords import PasswordHasher
from app.core.security.tokens import AccessTokenCodec
from app.db.engine import create_engine, create_probe_engine, create_sessionmaker

log = structlog.get_logger(__name__)
# Closing a pool waits on its server; one that no longer answers must not hold
# the process past the grace period its orchestrator gives it.
CLOSE_TIMEOUT_SECONDS = 5.0


@dataclass(slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    # The readiness check's own way to the database, outside the request pool.
    probe_engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    tokens: AccessTokenCodec
    cursors: CursorCodec
    mailer: Mailer
    # None unless REDIS_URL is set; rate limits then live in the process.
    redis: Redis | None
    rate_limiter: RateLimiter
    token_subjects: TokenSubjects
    # Set when the server begins to drain (SIGTERM) and again at shutdown:
    # readiness answers 503 and every answer asks the client to reconnect.
    shutting_down: bool = field(default=False)


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    engine = create_engine(settings)
    redis = create_redis(settings)
    resources = Resources(
        settings=settings,
        engine=engine,
        probe_engine=create_probe_engine(settings),
        sessionmaker=create_sessionmaker(engine),
        hasher=PasswordHasher(settings),
        tokens=AccessTokenCodec(settings),
        cursors=CursorCodec(settings.secret_key.get_secret_value().encode()),
        mailer=create_mailer(settings),
        redis=redis,
        rate_limiter=RateLimiter(
            redis,
            rules_from(settings),
            timeout_seconds=settings.rate_limit_storage_timeout_seconds,
            fail_open=settings.rate_limit_fail_open,
        ),
        token_subjects=TokenSubjects(AccessTokenCodec(settings)),
    )
    try:
        yield resources
    finally:
        resources.shutting_down = True
        resources.hasher.close()
        closing: dict[str, Awaitable[Any]] = {
            "rate_limiter": resources.rate_limiter.aclose(),
            "engine": engine.dispose(),
            "probe_engine": resources.probe_engine.dispose(),
        }
        if redis is not None:
            closing["redis"] = redis.aclose()
        # Side by side, each bounded: one stuck pool neither delays nor skips the others.
        await asyncio.gather(*(_close(name, step) for name, step in closing.items()))


async def _close(name: str, step: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await step
    except TimeoutError:
        log.warning("app.close_timed_out", resource=name, timeout_seconds=CLOSE_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("app.close_failed", resource=name, error=type(exc).__name__)


def resources_of_app(app: object) -> Resources | None:
    """The app's resources while its lifespan runs; None before, or for another app."""
    resources = getattr(getattr(app, "state", None), "resources", None)
    return resources if isinstance(resources, Resources) else None


def resources_of(connection: HTTPConnection) -> Resources:
    resources = connection.app.state.resources
    assert isinstance(resources, Resources), "the app's lifespan has not started"
    return resources
