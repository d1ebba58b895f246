"""X-Request-ID: keep a well-formed incoming id, otherwise mint one.

The id lives in asgi-correlation-id's context variable, which the logs, the
problem documents and the audit trail read; it is assigned here, by the edge
layer, rather than by that library's middleware, so the request pays for no
extra wrapper of `send`.
"""

from __future__ import annotations

import os
import re

import structlog
from asgi_correlation_id import correlation_id
from starlette.types import Scope

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_NAME = REQUEST_ID_HEADER.lower().encode("latin-1")
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

log = structlog.get_logger(__name__)


def is_valid_request_id(value: str) -> bool:
    return _VALID_REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A random version-4 UUID in hex, as `uuid.uuid4().hex` writes it, minus the UUID object."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def assign_request_id(scope: Scope, incoming: bytes | None) -> str:
    """This request's id: `incoming` when well-formed, else a new one.

    The request's own headers are made to carry the id it ends up with, so
    whatever reads the header downstream sees the same value as the logs.
    """
    value = incoming.decode("latin-1") if incoming else None
    if value is not None and is_valid_request_id(value):
        request_id = value
    else:
        request_id = new_request_id()
        headers = [(name, v) for name, v in scope["headers"] if name != _HEADER_NAME]
        headers.append((_HEADER_NAME, request_id.encode("latin-1")))
        scope["headers"] = headers
        if value:
            log.warning("request_id.replaced", request_id=request_id)
    correlation_id.set(request_id)
    return request_id
