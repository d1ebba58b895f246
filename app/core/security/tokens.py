"""Access tokens: short-lived JWTs, HS256 only, every claim required."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from app.core.config import Settings

# An explicit allow-list: `alg: none` and HS/RS confusion are refused by PyJWT
# only because the verifier never accepts anything but this.
ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "sid", "iss", "aud", "iat", "exp", "jti"]


class InvalidAccessToken(Exception):
    """The token is expired, forged, malformed or meant for someone else."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: uuid.UUID
    session_id: uuid.UUID
    issued_at: datetime
    token_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


class AccessTokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.secret_key.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = timedelta(seconds=settings.access_token_ttl_seconds)

    def issue(self, *, subject: uuid.UUID, session_id: uuid.UUID, now: datetime) -> IssuedToken:
        claims = {
            "sub": str(subject),
            "sid": str(session_id),
            "iss": self._issuer,
            "aud": self._audience,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return IssuedToken(token=token, expires_in=int(self._ttl.total_seconds()))

    def decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
            return AccessClaims(
                subject=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                issued_at=datetime.fromtimestamp(int(claims["iat"]), tz=UTC),
                token_id=str(claims["jti"]),
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidAccessToken(str(exc)) from exc
