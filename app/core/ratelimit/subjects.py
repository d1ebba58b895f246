"""Whose bearer token a request carries, for keying limits: verified once, then remembered briefly.

Verifying a JWT costs more than the rate-limit check itself, and one token
arrives on request after request; its subject is kept for a minute. Only
tokens that verify are kept, so forged ones cannot fill the memory, and a
kept token only ever decides which budget a request counts against: the
route still authenticates it in full.
"""

from __future__ import annotations

import time

from app.core.security.tokens import AccessTokenCodec, InvalidAccessToken

REMEMBER_SECONDS = 60.0
CAPACITY = 10_000


class TokenSubjects:
    def __init__(self, tokens: AccessTokenCodec, *, capacity: int = CAPACITY) -> None:
        self._tokens = tokens
        self._capacity = capacity
        self._known: dict[str, tuple[str, float]] = {}

    def subject_of(self, token: str) -> str | None:
        now = time.monotonic()
        known = self._known.get(token)
        if known is not None and known[1] > now:
            return known[0]
        try:
            subject = str(self._tokens.decode(token).subject)
        except InvalidAccessToken:
            return None
        if token not in self._known and len(self._known) >= self._capacity:
            # Dicts keep insertion order: the oldest entry goes first.
            del self._known[next(iter(self._known))]
        self._known[token] = (subject, now + REMEMBER_SECONDS)
        return subject
