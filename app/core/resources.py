"""Long-lived collaborators, built once per process by the lifespan (or the CLI).

Services receive this object instead of a growing list of arguments; nothing
in it is created at import time, so every app instance owns its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

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
from app.db.engine import create_engine, create_sessionmaker


@dataclass(slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    tokens: AccessTokenCodec
    cursors: CursorCodec
    mailer: Mailer
    # None unless REDIS_URL is set; rate limits then live in the process.
    redis: Redis | None
    rate_limiter: RateLimiter
    token_subjects: TokenSubjects
    shutting_down: bool = field(default=False)


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    engine = create_engine(settings)
    redis = create_redis(settings)
    resources = Resources(
        settings=settings,
        engine=engine,
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
        await resources.rate_limiter.aclose()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def resources_of(connection: HTTPConnection) -> Resources:
    resources = connection.app.state.resources
    assert isinstance(resources, Resources), "the app's lifespan has not started"
    return resources
