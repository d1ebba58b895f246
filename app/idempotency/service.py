"""Idempotent creation: one key, one effect, the same answer on every retry.

The key is claimed by inserting a row under a unique constraint in the same
transaction as the effect. A concurrent request with the same key blocks on
that row until the first commits, then finds the stored answer — so two
racing retries create one resource. Failure rolls back the claim with the
effect, leaving the key free to retry.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, IdempotencyKeyReused
from app.db.types import utcnow
from app.idempotency.models import IdempotencyRecord
from app.idempotency.repository import IdempotencyRepository


def fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


class IdempotencyKeys:
    """Joins the caller's transaction (the effect's own); never commits."""

    def __init__(self, session: AsyncSession, *, ttl_seconds: int) -> None:
        self.records = IdempotencyRepository(session)
        self.ttl = timedelta(seconds=ttl_seconds)

    async def claim(
        self, *, owner_id: uuid.UUID, scope: str, key: str, request_hash: str
    ) -> IdempotencyRecord | StoredResponse:
        """The new claim to complete, or the stored answer of an earlier identical request."""
        await self.records.delete_older_than(owner_id, scope, key, utcnow() - self.ttl)
        record = IdempotencyRecord(
            owner_id=owner_id, scope=scope, key=key, request_hash=request_hash
        )
        if await self.records.try_insert(record):
            return record
        existing = await self.records.get(owner_id, scope, key)
        if existing is None or existing.response_body is None or existing.response_status is None:
            # Only possible if the holder vanished between our insert and read.
            raise Conflict("This Idempotency-Key is in use by a request still in progress.")
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request body."
            )
        return StoredResponse(status=existing.response_status, body=existing.response_body)

    async def complete(
        self, record: IdempotencyRecord, *, status: int, body: dict[str, Any]
    ) -> None:
        """Store the first answer, to be committed with the effect it describes."""
        await self.records.complete(record, status=status, body=body)
