"""Several uvicorn workers, one set of metrics.

With PROMETHEUS_MULTIPROC_DIR set, prometheus_client keeps each worker's
values in files there and `/metrics` adds them up. The directory must start
empty (stale files would be counted again) and a worker that exits must be
marked dead, or its in-progress and pool gauges would count forever.
"""

from __future__ import annotations

import os
from pathlib import Path
from socket import socket

from prometheus_client.multiprocess import mark_process_dead
from uvicorn import Config
from uvicorn.supervisors import Multiprocess


def prepare_multiprocess_dir(path: Path) -> None:
    """Clear the directory before any worker starts, and hand it to the workers.

    prometheus_client reads the variable itself when a worker imports it;
    setting it here lets a value from `.env` reach the workers too.
    """
    path.mkdir(parents=True, exist_ok=True)
    # Only prometheus_client's own files: the setting could name a directory
    # that holds anything else.
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


class MetricsSupervisor(Multiprocess):
    """uvicorn's worker supervisor, which also reports every worker that is gone.

    uvicorn has no worker-exit hook (gunicorn's `child_exit`). Every way a
    worker leaves — crash and respawn, SIGHUP restart, SIGTTOU, shutdown —
    changes the supervisor's list of processes, which is compared after each
    turn of its loop and once more when it stops.
    """

    def __init__(self, config: Config, sockets: list[socket], *, multiproc_dir: Path) -> None:
        super().__init__(config, sockets)
        self._multiproc_dir = str(multiproc_dir)
        self._known: set[int] = set()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        alive = {process.pid for process in self.processes if process.pid is not None}
        self._forget(self._known - alive)
        self._known = alive

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._forget(self._known | {p.pid for p in self.processes if p.pid is not None})

    def _forget(self, pids: set[int]) -> None:
        for pid in pids:
            mark_process_dead(pid, self._multiproc_dir)  # type: ignore[no-untyped-call]
