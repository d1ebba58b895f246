"""What a job handler is given, and what it is."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.core.context import RequestContext
from app.core.resources import Resources


@dataclass(frozen=True, slots=True)
class Job:
    # The outbox row's id: the key a handler makes its effect idempotent by.
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    # Failed attempts so far (0 on the first run).
    attempts: int
    # The request that made the job: audit events written by the handler name it.
    context: RequestContext
    # When this attempt started, by the runner's clock.
    now: datetime


# A handler raises to have the job tried again later; it may run more than once
# for one row (delivery is at least once), so it must be safe to repeat.
Handler = Callable[[Resources, Job], Awaitable[None]]
