"""Access tokens: short-lived JWTs, HS256 only, every claim required.

Each token names its signing key by `kid` in the header, so the key can be
rotated: SECRET_KEY signs, and SECRET_KEY and SECRET_KEY_PREVIOUS verify.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from app.core.clock import Clock
from app.core.config import Settings

# An explicit allow-list: `alg: none` and HS/RS confusion are refused by PyJWT
# only because the verifier never accepts anything but this.
ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "sid", "iss", "aud", "iat", "exp", "jti"]
# Domain-separated so the key id is never the digest some other use of the key
# might publish; 64 bits keep distinct keys apart.
_KEY_ID_LABEL = b"groundwork.access-token.kid.v1:"
_KEY_ID_HEX_CHARS = 16
NEW_KEY_BYTES = 48
# Issuer and verifier share one clock (this process, or replicas kept by NTP).
_LEEWAY_SECONDS = 0


def key_id(key: str) -> str:
    """The `kid` naming a signing key: a short digest, as the header is readable by anyone."""
    return hashlib.sha256(_KEY_ID_LABEL + key.encode()).hexdigest()[:_KEY_ID_HEX_CHARS]


def new_signing_key() -> str:
    return secrets.token_urlsafe(NEW_KEY_BYTES)


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
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._key = settings.secret_key.get_secret_value()
        self._key_id = key_id(self._key)
        previous = [key.get_secret_value() for key in settings.secret_key_previous]
        self._verifying = {key_id(key): key for key in [*previous, self._key]}
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
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._key_id})
        return IssuedToken(token=token, expires_in=int(self._ttl.total_seconds()))

    def decode(self, token: str) -> AccessClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._verifying.get(kid) if isinstance(kid, str) else None
            if key is None:
                # No `kid`, or one of a key that was removed or never ours.
                raise InvalidAccessToken("the token names no key this server verifies with")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                # PyJWT would judge the times by the system clock: the app's is judged below.
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
            self._check_times(claims)
            return AccessClaims(
                subject=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                issued_at=datetime.fromtimestamp(int(claims["iat"]), tz=UTC),
                token_id=str(claims["jti"]),
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidAccessToken(str(exc)) from exc

    def _check_times(self, claims: dict[str, object]) -> None:
        """PyJWT's rules for exp, iat and nbf (no leeway), against the app's clock."""
        now = self._clock.now().timestamp()
        if _seconds(claims["exp"]) <= now - _LEEWAY_SECONDS:
            raise InvalidAccessToken("the token has expired")
        if _seconds(claims["iat"]) > now + _LEEWAY_SECONDS:
            raise InvalidAccessToken("the token is not valid yet (iat)")
        if "nbf" in claims and _seconds(claims["nbf"]) > now + _LEEWAY_SECONDS:
            raise InvalidAccessToken("the token is not valid yet (nbf)")


def _seconds(claim: object) -> int:
    """A NumericDate claim as PyJWT reads it; ValueError or TypeError when it is none."""
    if not isinstance(claim, int | float | str):
        raise TypeError("a time claim must be a number")
    return int(claim)
