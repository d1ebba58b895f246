"""Long-lived objects owned by the app's lifespan, typed for dependency code."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.core.config import Settings
from app.core.pagination import CursorCodec
from app.core.security.passwords import PasswordHasher
from app.core.security.tokens import AccessTokenCodec


@dataclass(slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    tokens: AccessTokenCodec
    cursors: CursorCodec
    shutting_down: bool = field(default=False)


def resources_of(connection: HTTPConnection) -> Resources:
    resources = connection.app.state.resources
    assert isinstance(resources, Resources), "the app's lifespan has not started"
    return resources
