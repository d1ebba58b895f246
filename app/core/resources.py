"""Long-lived collaborators, built once per process by the lifespan (or the CLI).

Services receive this object instead of a growing list of arguments; nothing
in it is created at import time, so every app instance owns its own. What
opens and closes them is the composition root's (`open_resources` in
app/main.py): core names the pieces, it does not build the database's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.core.app_state import state_value
from app.core.authz import PermissionCatalogue
from app.core.clock import Clock
from app.core.config import Settings
from app.core.mail import Mailer
from app.core.pagination import CursorCodec
from app.core.ratelimit import RateLimiter
from app.core.ratelimit.subjects import TokenSubjects
from app.core.security.keyring import DataKeyring
from app.core.security.passwords import PasswordHasher
from app.core.security.tokens import AccessTokenCodec


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
    # Data encrypted at rest (DATA_ENCRYPTION_KEYS); empty until configured.
    keyring: DataKeyring
    mailer: Mailer
    # None unless REDIS_URL is set; rate limits then live in the process.
    redis: Redis | None
    rate_limiter: RateLimiter
    token_subjects: TokenSubjects
    # What business rules read the time from (expiry, lockout windows).
    clock: Clock
    # Every feature's permissions, assembled above the features (app/api/permissions.py).
    permissions: PermissionCatalogue
    # Set when the server begins to drain (SIGTERM) and again at shutdown:
    # readiness answers 503 and every answer asks the client to reconnect.
    shutting_down: bool = field(default=False)


def resources_of_app(app: object) -> Resources | None:
    """The app's resources while its lifespan runs; None before, or for another app."""
    resources = state_value(getattr(app, "state", None), "resources")
    return resources if isinstance(resources, Resources) else None


def resources_of(connection: HTTPConnection) -> Resources:
    resources = state_value(connection.app.state, "resources")
    assert isinstance(resources, Resources), "the app's lifespan has not started"
    return resources
