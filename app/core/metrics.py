"""Every Prometheus metric of the app, defined once.

prometheus_client keeps metrics in a process-wide registry, so these objects
live at module level by design; features import and increment them. Anything
bound to one app (an engine's pool, say) is attached in the lifespan instead.

Gauges name a multiprocess mode: with several workers each process writes its
own value and `/metrics` adds up the live ones.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

# `_created` series double the exposition and no dashboard or alert reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

METRICS_PATH = "/metrics"

# Route label of a request no route matched: one series for every stray path.
UNMATCHED_ROUTE = "unmatched"

# API latencies: fine steps up to the 500 ms SLO threshold, coarse after it.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# argon2id takes tens of milliseconds; waits in the queue can reach seconds.
HASH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by route template and status code.",
    ("method", "route", "status"),
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from receiving a request to sending the last byte of its answer.",
    ("method", "route"),
    buckets=HTTP_BUCKETS,
)
HTTP_REQUESTS_IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being handled right now.",
    multiprocess_mode="livesum",
)

# The children of one (method, route, status): `labels()` validates and
# looks its arguments up on every call, which costs a cheap request more
# than the increment itself. The key space is that of the series, so it is
# bounded by it.
_REQUEST_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def request_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The request counter and the duration histogram of one method, route and status."""
    key = (method, route, status)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        series = _REQUEST_SERIES[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_REQUEST_DURATION.labels(method, route),
        )
    return series


LOGIN_OUTCOMES = ("success", "unknown_email", "bad_password", "inactive", "locked_out")
LOGINS = Counter("auth_logins", "Login attempts, by outcome (one of LOGIN_OUTCOMES).", ("outcome",))
# Present at zero from the start, so a failure ratio is defined before the first failure.
for _outcome in LOGIN_OUTCOMES:
    LOGINS.labels(outcome=_outcome)
REFRESH_REUSE = Counter(
    "auth_refresh_reuse_detected",
    "Spent refresh tokens presented again (each revokes a whole login's tokens).",
)
# limit: the name of the limit that refused the request (e.g. login, register)
RATE_LIMITED = Counter("rate_limit_rejections", "Requests refused with 429, by limit.", ("limit",))

# operation: hash | verify
PASSWORD_HASH_DURATION = Histogram(
    "password_hash_duration_seconds",
    "CPU time of one password hash or verification in the hashing pool.",
    ("operation",),
    buckets=HASH_BUCKETS,
)
PASSWORD_HASH_QUEUE_WAIT = Histogram(
    "password_hash_queue_wait_seconds",
    "Time a hash waited for a free thread of the hashing pool.",
    buckets=HASH_BUCKETS,
)

# kind: the table a retention purge deleted from (app/retention/)
RETENTION_DELETED = Counter(
    "retention_deleted_rows", "Rows deleted by the retention purges, by kind.", ("kind",)
)

DB_POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out",
    "Database connections lent to requests right now.",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "db_pool_overflow",
    "Connections open beyond DB_POOL_SIZE right now.",
    multiprocess_mode="livesum",
)
DB_POOL_CAPACITY = Gauge(
    "db_pool_capacity",
    "Most connections the pool may lend at once (DB_POOL_SIZE + DB_MAX_OVERFLOW).",
    multiprocess_mode="livesum",
)


# Background jobs (docs/jobs.md). outcome: done | retry | dead | skipped
# (skipped: the row was finished, not yet due, or running elsewhere).
JOB_OUTCOMES = ("done", "retry", "dead", "skipped")
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOBS = Counter("jobs", "Job attempts, by kind and outcome.", ("kind", "outcome"))
JOB_DURATION = Histogram(
    "job_duration_seconds", "Time one job attempt took, by kind.", ("kind",), buckets=JOB_BUCKETS
)
# Read from the outbox, the jobs' truth, by every process that runs jobs;
# each sees the same table, so the largest live value is the answer.
JOBS_PENDING = Gauge(
    "jobs_pending",
    "Outbox jobs not yet done (queued, running or waiting to retry).",
    multiprocess_mode="livemax",
)
JOBS_OLDEST_PENDING_AGE = Gauge(
    "jobs_oldest_pending_age_seconds",
    "Age of the oldest job not yet done; 0 when none waits.",
    multiprocess_mode="livemax",
)
JOBS_DEAD = Gauge(
    "jobs_dead",
    "Jobs that failed every attempt and wait for an operator (python -m app jobs-retry).",
    multiprocess_mode="livemax",
)
WORKER_HEARTBEAT = Gauge(
    "worker_heartbeat_timestamp_seconds",
    "Unix time of the job loop's last beat.",
    multiprocess_mode="livemax",
)


def render(multiproc_dir: Path | None, accept: str | None) -> tuple[bytes, str]:
    """The exposition body and its content type, in the format the scraper asked for."""
    registry: CollectorRegistry = REGISTRY
    if multiproc_dir is not None:
        # Each scrape reads every worker's files, whichever worker answers.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
