"""Retention: deleting rows once nothing needs them any more.

`run_retention(sessionmaker, settings, now=...)` runs every purge of
`PURGES` once and answers the rows each deleted, by kind. It is scheduled
with the background jobs and run by hand with `python -m app purge`.

A purge is

    async def purge_x(sessionmaker, settings, *, now: datetime) -> int

(the `Purge` protocol): it works out its cutoff from `now` and its own
setting, never from the clock, deletes in batches of RETENTION_BATCH_SIZE
rows, each batch in a transaction of its own (`app.db.batches`), and
answers how many rows went. Adding one is one line in `PURGES`; a purge
defined in a package this one may not import is passed in instead:
`run_retention(..., purges=(*PURGES, ("outbox", purge_outbox)))`.
"""

from app.retention.purges import PURGES, Purge
from app.retention.runner import run_retention

__all__ = ["PURGES", "Purge", "run_retention"]
