"""The limiter's own metrics. Refusals (429s) are `rate_limit_rejections` in app/core/metrics.py."""

from __future__ import annotations

from prometheus_client import Counter

# limit: the name of the limit (e.g. default, login, login-lockout)
STORAGE_FAILURES = Counter(
    "rate_limit_storage_failures",
    "Rate-limit storage calls that failed, timed out or were skipped while the storage was "
    "down. The default limit then follows RATE_LIMIT_FAIL_OPEN; every other limit counts "
    "in the process (rate_limit_local_fallbacks).",
    ("limit",),
)
LOCAL_FALLBACKS = Counter(
    "rate_limit_local_fallbacks",
    "Checks of a limit that is never skipped (login, lockout, registration, reset, refresh) "
    "counted in this process alone because the shared storage failed or was slow.",
    ("limit",),
)
