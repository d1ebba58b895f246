"""The worker's own small HTTP server: liveness from its heartbeat, readiness, and /metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from app.api import metrics
from app.core.resources import Resources


class _QuietServer(uvicorn.Server):
    # The worker owns SIGTERM and SIGINT (to drain); uvicorn must not take them.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def probe_app(
    resources: Resources, *, alive: Callable[[], bool], ready: Callable[[], bool]
) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # /metrics admits the same callers as the API's (METRICS_TOKEN, METRICS_ALLOWED_NETWORKS).
    app.state.resources = resources
    app.include_router(metrics.router)

    @app.get("/health/live")
    async def live() -> JSONResponse:
        """200 while the job loop beats; a stuck worker is restarted."""
        if alive():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "stalled"}, status_code=503)

    @app.get("/health/ready")
    async def ready_() -> JSONResponse:
        """200 once the worker takes jobs, 503 while it starts or drains."""
        if ready():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    return app


def probe_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return _QuietServer(config)
