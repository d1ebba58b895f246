"""The limiter's own metric. Refusals (429s) are `rate_limit_rejections` in app/core/metrics.py."""

from __future__ import annotations

from prometheus_client import Counter

STORAGE_FAILURES = Counter(
    "rate_limit_storage_failures",
    "Rate-limit storage calls that failed, timed out or were skipped while the storage was "
    "down; each was answered by the RATE_LIMIT_FAIL_OPEN policy.",
    ("limit",),
)
