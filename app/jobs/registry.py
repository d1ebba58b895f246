"""Every job the app runs, and every scheduled one: adding a job is a line in each table.

A handler is `async def handler(resources, job) -> None` (app/outbox/job.py);
a use case queues it with `Outbox(session, context).add(KIND, payload)` in
its own transaction. See docs/jobs.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from app.auth.password_reset import RESET_MAIL, send_reset_mail
from app.core.resources import Resources
from app.jobs.schedule import Scheduled
from app.outbox.job import Handler, Job
from app.retention import run_retention

RETENTION = "retention.run"


async def run_retention_job(resources: Resources, job: Job) -> None:
    """Every purge of app/retention at the period's time; it logs its own counts."""
    await run_retention(resources.sessionmaker, resources.settings, now=job.now)


HANDLERS: Mapping[str, Handler] = {
    RESET_MAIL: send_reset_mail,
    RETENTION: run_retention_job,
}

SCHEDULE: Sequence[Scheduled] = (Scheduled(RETENTION, every=timedelta(hours=1)),)
