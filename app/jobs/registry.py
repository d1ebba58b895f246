"""Every job the app runs, and every scheduled one: adding a job is a line in each table.

A handler is `async def handler(resources, job) -> None` (app/outbox/job.py);
a use case queues it with `Outbox(session, context).add(KIND, payload)` in
its own transaction. See docs/jobs.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import structlog

from app.auth.password_reset import RESET_MAIL, send_reset_mail
from app.core.resources import Resources
from app.jobs.schedule import Scheduled
from app.outbox.job import Handler, Job
from app.outbox.purge import purge_sent_outbox

log = structlog.get_logger(__name__)

PURGE_FINISHED_JOBS = "jobs.purge_finished"


async def purge_finished_jobs(resources: Resources, job: Job) -> None:
    deleted = await purge_sent_outbox(resources.sessionmaker, resources.settings, now=job.now)
    log.info("jobs.purged", deleted=deleted)


HANDLERS: Mapping[str, Handler] = {
    RESET_MAIL: send_reset_mail,
    PURGE_FINISHED_JOBS: purge_finished_jobs,
}

SCHEDULE: Sequence[Scheduled] = (Scheduled(PURGE_FINISHED_JOBS, every=timedelta(hours=1)),)
