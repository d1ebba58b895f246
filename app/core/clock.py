"""The time business rules read: token and session expiry, reset-token age, lockout windows.

One object on the app's Resources, so a test can move time instead of waiting
for it. Record timestamps (`created_at` columns) and Redis's own windows keep
their own clocks: they record when something happened, they decide nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """The real time: wall-clock for what expires, monotonic for intervals in the process."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
