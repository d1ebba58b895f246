"""Serving processes: a server that drains before it stops, and a supervisor of several.

The drain. uvicorn, on SIGTERM, closes its listener at once, so a load
balancer still sending to this replica meets refused connections. The
server here first keeps serving for SHUTDOWN_DRAIN_SECONDS with readiness
at 503 (the app's `Resources.shutting_down`), then stops the way uvicorn
does: listener closed, requests in flight given SHUTDOWN_TIMEOUT_SECONDS
(`timeout_graceful_shutdown`), then the lifespan closes pools and flushes
spans. A second SIGINT (Ctrl-C again) stops at once.

Several workers. uvicorn's supervisor forwards SIGTERM to each worker,
which drains by itself. With PROMETHEUS_MULTIPROC_DIR set, prometheus_client
keeps each worker's values in files there and `/metrics` adds them up: the
directory must start empty (stale files would be counted again) and a
worker that exits must be marked dead, or its in-progress and pool gauges
would count forever.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from pathlib import Path
from socket import socket
from types import FrameType
from typing import TYPE_CHECKING

import structlog
from prometheus_client.multiprocess import mark_process_dead
from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

if TYPE_CHECKING:
    from app.core.config import Settings

# A new worker process imports this module before anything else, to unpickle
# its `DrainingProcess`, and must answer the supervisor's health check soon
# after: the app (and what it imports) is loaded later, in `_begin_drain`
# and by uvicorn, while the worker already answers.
log = structlog.get_logger(__name__)

# Long enough for a load balancer's health checks (or Kubernetes' endpoint
# removal) to notice that this replica is going, before its listener closes.
PRODUCTION_DRAIN_SECONDS = 10.0
# Objects made and not yet freed before a young collection (see `DrainingServer.startup`).
YOUNG_COLLECTION_THRESHOLD = 10_000
# How often a parent waiting for its draining workers looks for a Ctrl-C to pass on.
_JOIN_POLL_SECONDS = 0.1


def drain_seconds(settings: Settings) -> float:
    """SHUTDOWN_DRAIN_SECONDS, or its default: a drain only where a load balancer sends traffic."""
    if settings.shutdown_drain_seconds is not None:
        return settings.shutdown_drain_seconds
    return PRODUCTION_DRAIN_SECONDS if settings.is_production else 0.0


class DrainingServer(Server):
    """uvicorn's server, serving on with readiness at 503 for a while after the first signal."""

    def __init__(self, config: Config, *, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._stop_requested_at: float | None = None
        self._draining = False

    async def serve(self, sockets: list[socket] | None = None) -> None:
        # Loading the app and starting it build some 200,000 objects that live
        # as long as the process, and almost no garbage: collections meanwhile
        # would walk them again and again (about a fifth of start-up's CPU
        # time) to free next to nothing. Paused until `startup` freezes them.
        gc.disable()
        try:
            await super().serve(sockets=sockets)
        finally:
            gc.enable()

    async def startup(self, sockets: list[socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # What start-up built (modules, routes, schemas) lives as long as the
        # process. Left to the collector, every full collection walks all of
        # it, some 50 ms with the event loop stopped, and under load that
        # pause is the tail latency. Frozen, a collection walks only what
        # requests made since. Cyclic garbage left from start-up is kept: a
        # one-off, bounded amount (some 1,300 objects, under 1 MB).
        gc.freeze()
        # A young collection runs whenever the objects made exceed the ones
        # freed by this many; each walks every object requests in flight
        # still hold and moves them to an older generation, which then has
        # to be walked too. A request holds a few hundred, so at the default
        # (700; 2,000 from Python 3.13) thirty requests in flight made a
        # collection every few requests that freed nothing: some 6 % of the
        # server's CPU time. Set above what requests in flight hold, a
        # collection runs when garbage (cycles) has really piled up.
        young, older, oldest = gc.get_threshold()
        gc.set_threshold(max(young, YOUNG_COLLECTION_THRESHOLD), older, oldest)
        gc.enable()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn records the signal to raise it again once stopped, which
        # would end a clean drain with "killed by SIGTERM" (143); not recorded here.
        if self.should_exit or self._stop_requested_at is not None:
            # A repeated SIGTERM changes nothing: systemd and the supervisor
            # may both send one to each worker. A second Ctrl-C stops now.
            if sig == signal.SIGINT:
                self.should_exit = self.force_exit = True
            return
        if self.drain_seconds > 0 and self.started:
            # Only a flag and a clock here; the work (and the log line) is done
            # by the event loop at its next tick, outside the signal handler.
            self._stop_requested_at = time.monotonic()
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._stop_requested_at is not None and not self.should_exit:
            if not self._draining:
                self._begin_drain()
            if time.monotonic() - self._stop_requested_at >= self.drain_seconds:
                log.info("server.drained", drain_seconds=self.drain_seconds)
                self.should_exit = True
        return await super().on_tick(counter)

    def _begin_drain(self) -> None:
        from app.core.resources import resources_of_app

        self._draining = True
        resources = resources_of_app(self.config.loaded_app)
        if resources is None:
            # Nothing tells the load balancer; waiting would only delay the stop.
            self.should_exit = True
            return
        resources.shutting_down = True
        log.info("server.draining", drain_seconds=self.drain_seconds)


class DrainingProcess(Process):
    """A worker process whose server drains (uvicorn's worker, with another server)."""

    def __init__(self, config: Config, sockets: list[socket], *, drain_seconds: float) -> None:
        self._drain_seconds = drain_seconds
        super().__init__(config, sockets)

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = DrainingServer(self.config, drain_seconds=self._drain_seconds)
        return self._server


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, with draining workers and metrics kept honest.

    Every place uvicorn starts a worker (start-up, a crashed worker, SIGHUP's
    rolling restart, SIGTTIN) starts a `DrainingProcess` here instead.
    uvicorn has no worker-exit hook (gunicorn's `child_exit`): every way a
    worker leaves changes the list of processes, which is compared after
    each turn of the loop and once more at the end.
    """

    def __init__(
        self,
        config: Config,
        sockets: list[socket],
        *,
        drain_seconds: float,
        multiproc_dir: Path | None = None,
    ) -> None:
        super().__init__(config, sockets)
        self._drain_seconds = drain_seconds
        self._multiproc_dir = str(multiproc_dir) if multiproc_dir is not None else None
        self._known: set[int] = set()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._forget(self._known | self._pids())

    def init_processes(self) -> None:
        self.processes.extend(self._spawn() for _ in range(self.processes_num))

    def keep_subprocess_alive(self) -> None:
        for index, process in enumerate(self.processes):
            if self.should_exit.is_set():
                break
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            # Hung or gone: make sure it is gone.
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # It never started; a new one would fail the same way.
                log.error("server.worker_failed_to_start", pid=process.pid)
                self.should_exit.set()
                break
            if self.should_exit.is_set():
                break
            log.warning("server.worker_died", pid=process.pid, exitcode=process.exitcode)
            self.processes[index] = self._spawn()
        current = self._pids()
        self._forget(self._known - current)
        self._known = current

    def restart_all(self) -> None:
        """SIGHUP: one worker at a time, each replaced only once its successor serves."""
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._spawn()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                log.error("server.restart_aborted", pid=new.pid, keeping=old.pid)
                return
            old.terminate()
            old.join()
            self.processes[index] = new

    def handle_ttin(self) -> None:
        self.processes_num += 1
        self.processes.append(self._spawn())

    def terminate_all(self) -> None:
        # The workers hold the listening socket too and keep it open while they
        # drain; the parent's copy would keep it listening after they close
        # theirs, queuing connections that no one accepts.
        for listener in self.sockets:
            listener.close()
        super().terminate_all()

    def join_all(self) -> None:
        # The workers drain and finish what is in flight; a Ctrl-C meanwhile is
        # passed on, which stops them at once.
        while any(process.process.is_alive() for process in self.processes):
            if signal.SIGINT in self.signal_queue:
                self.signal_queue.clear()
                for process in self.processes:
                    if process.pid is not None and process.process.is_alive():
                        os.kill(process.pid, signal.SIGINT)
            time.sleep(_JOIN_POLL_SECONDS)
        super().join_all()

    def _spawn(self) -> DrainingProcess:
        process = DrainingProcess(self.config, self.sockets, drain_seconds=self._drain_seconds)
        process.start()
        return process

    def _pids(self) -> set[int]:
        return {process.pid for process in self.processes if process.pid is not None}

    def _forget(self, pids: set[int]) -> None:
        if self._multiproc_dir is None:
            return
        for pid in pids:
            mark_process_dead(pid, self._multiproc_dir)  # type: ignore[no-untyped-call]


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
