"""The bare baseline `bench/compare.py` measures the project against.

FastAPI, async SQLAlchemy Core on asyncpg and PyJWT, no middleware: the least
code that does the same work as the project's endpoints, on the project's
own tables, so the ratio between the two is what the project's layers cost.

- `GET /ping`: a constant answer (against `/health/live`);
- `GET /items?limit=N&after=<created_at>,<id>`: decode and check the bearer
  token (HS256, issuer, audience), read the user's live session, roles and
  permissions in one query (as the project does, so revocation would be as
  immediate), then one keyset page of the user's items, newest first;
- `POST /token`: the form login: the user by e-mail, the argon2id hash
  verified (in a thread, as the project does), a session row written and an
  access token signed.

Settings come from BARE_DATABASE_URL and BARE_SECRET_KEY; the issuer and
audience are the project's defaults.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import FastAPI, Form, Header, HTTPException, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ISSUER = "groundwork"
AUDIENCE = "groundwork-api"
ACCESS_MINUTES = 15
SESSION_DAYS = 30

_PRINCIPAL = text(
    """
    SELECT roles.name, role_permissions.permission
    FROM auth_sessions
    JOIN users ON users.id = auth_sessions.user_id
    LEFT JOIN user_roles ON user_roles.user_id = users.id
    LEFT JOIN roles ON roles.id = user_roles.role_id
    LEFT JOIN role_permissions ON role_permissions.role_id = roles.id
    WHERE auth_sessions.id = :sid AND auth_sessions.user_id = :sub
      AND auth_sessions.revoked_at IS NULL AND auth_sessions.expires_at > :now
      AND users.is_active
    """
)
_FIRST_PAGE = text(
    """
    SELECT id, title, description, created_at, updated_at, version FROM items
    WHERE owner_id = :owner ORDER BY created_at DESC, id DESC LIMIT :limit
    """
)
_NEXT_PAGE = text(
    """
    SELECT id, title, description, created_at, updated_at, version FROM items
    WHERE owner_id = :owner AND (created_at, id) < (:created_at, :id)
    ORDER BY created_at DESC, id DESC LIMIT :limit
    """
)
_USER_BY_EMAIL = text("SELECT id, password_hash FROM users WHERE email = :email AND is_active")
_NEW_SESSION = text(
    "INSERT INTO auth_sessions (id, user_id, created_at, updated_at, expires_at) "
    "VALUES (:id, :user_id, :now, :now, :expires_at)"
)


def create_app() -> FastAPI:
    database_url = os.environ["BARE_DATABASE_URL"]
    secret = os.environ["BARE_SECRET_KEY"]
    hasher = PasswordHasher()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_async_engine(database_url, pool_size=10, max_overflow=10)
        yield
        await app.state.engine.dispose()

    app = FastAPI(lifespan=lifespan, openapi_url=None)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items")
    async def items(
        request: Request,
        authorization: Annotated[str, Header()] = "",
        limit: int = 20,
        after: str | None = None,
    ) -> dict[str, Any]:
        claims = _claims(authorization, secret)
        engine: AsyncEngine = request.app.state.engine
        async with engine.connect() as connection:
            grants = await connection.execute(
                _PRINCIPAL, {"sid": claims[1], "sub": claims[0], "now": datetime.now(UTC)}
            )
            if not grants.all():
                raise HTTPException(401, "invalid token")
            if after is None:
                first = {"owner": claims[0], "limit": limit + 1}
                rows = await connection.execute(_FIRST_PAGE, first)
            else:
                created_at, row_id = after.split(",")
                rows = await connection.execute(
                    _NEXT_PAGE,
                    {
                        "owner": claims[0],
                        "limit": limit + 1,
                        "created_at": datetime.fromisoformat(created_at),
                        "id": uuid.UUID(row_id),
                    },
                )
            page = [dict(row._mapping) for row in rows]
        following = None
        if len(page) > limit:
            page = page[:limit]
            following = f"{page[-1]['created_at'].isoformat()},{page[-1]['id']}"
        return {"items": page, "next_cursor": following}

    @app.post("/token")
    async def token(
        request: Request, username: Annotated[str, Form()], password: Annotated[str, Form()]
    ) -> dict[str, str]:
        engine: AsyncEngine = request.app.state.engine
        async with engine.connect() as connection:
            user = (await connection.execute(_USER_BY_EMAIL, {"email": username})).first()
        if user is None:
            raise HTTPException(401, "bad credentials")
        try:
            await asyncio.to_thread(hasher.verify, user.password_hash, password)
        except VerificationError as exc:
            raise HTTPException(401, "bad credentials") from exc
        now = datetime.now(UTC)
        session_id = uuid.uuid4()
        async with engine.begin() as connection:
            await connection.execute(
                _NEW_SESSION,
                {
                    "id": session_id,
                    "user_id": user.id,
                    "now": now,
                    "expires_at": now + timedelta(days=SESSION_DAYS),
                },
            )
        claims = {
            "sub": str(user.id),
            "sid": str(session_id),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + timedelta(minutes=ACCESS_MINUTES),
            "jti": uuid.uuid4().hex,
        }
        return {"access_token": jwt.encode(claims, secret, algorithm="HS256")}

    return app


def _claims(authorization: str, secret: str) -> tuple[uuid.UUID, uuid.UUID]:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "send a bearer token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["sub", "sid", "iss", "aud", "iat", "exp", "jti"]},
        )
        return uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise HTTPException(401, "invalid token") from exc
