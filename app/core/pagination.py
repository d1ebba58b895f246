"""Opaque, tamper-evident keyset cursors and the page envelope."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

from app.core.errors import InvalidCursor

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_SIGNATURE_BYTES = 16
_MAX_CURSOR_CHARS = 512


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends: the sort key of its last row."""

    created_at: datetime
    id: uuid.UUID


class CursorCodec:
    """Signs positions so a client can hand them back but not forge them."""

    def __init__(self, secret: bytes) -> None:
        # A key of its own, so a cursor can never double as any other token.
        self._key = hmac.digest(secret, b"groundwork.cursor.v1", "sha256")

    def _sign(self, payload: bytes) -> bytes:
        # One call into OpenSSL: `hmac.new(...).digest()` runs five Python functions.
        return hmac.digest(self._key, payload, "sha256")[:_SIGNATURE_BYTES]

    def encode(self, position: Position) -> str:
        # The JSON array `decode` reads, written out: neither an ISO time nor
        # hex digits hold anything JSON escapes, and a separators-tuned
        # `json.dumps` builds an encoder per call (three times the cost).
        payload = f'["{position.created_at.isoformat()}","{position.id.hex}"]'.encode()
        token = self._sign(payload) + payload
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def decode(self, cursor: str) -> Position:
        if len(cursor) > _MAX_CURSOR_CHARS:
            raise InvalidCursor("The cursor is not one this server issued.")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor("The cursor is not one this server issued.") from exc
        signature, payload = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidCursor("The cursor is not one this server issued.")
        try:
            created_at, row_id = json.loads(payload)
            return Position(datetime.fromisoformat(created_at), uuid.UUID(hex=row_id))
        except (ValueError, TypeError) as exc:  # signed by us, so only a key rotation lands here
            raise InvalidCursor("The cursor could not be read.") from exc
