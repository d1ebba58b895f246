"""Opaque bearer secrets (refresh and reset tokens): random, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

# 32 bytes = 256 bits of entropy; guessing is not an attack worth modelling.
_TOKEN_BYTES = 32


def new_secret() -> tuple[str, str]:
    """A fresh token for the client and the digest to store instead of it."""
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    return token, digest(token)


def digest(token: str) -> str:
    # A plain hash suffices: the input is high-entropy, so no salt or
    # stretching is needed, and lookups by digest stay an index probe.
    return hashlib.sha256(token.encode()).hexdigest()
