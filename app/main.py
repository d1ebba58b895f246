"""Application factory and lifespan: the one place the app is assembled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from app.api import health, metrics, v1
from app.api.docs import install_docs
from app.api.fixed_answers import serve_fixed_answers
from app.api.openapi import install_openapi
from app.api.permissions import CATALOGUE
from app.api.routing import include, index_static_paths
from app.core.clock import Clock
from app.core.config import Settings
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.mail import create_mailer
from app.core.middleware import build_middleware
from app.core.pagination import CursorCodec
from app.core.ratelimit import RateLimiter, rules_from
from app.core.ratelimit.subjects import TokenSubjects
from app.core.redis import create_redis
from app.core.resources import Resources
from app.core.security.keyring import DataKeyring
from app.core.security.passwords import PasswordHasher
from app.core.security.tokens import AccessTokenCodec
from app.core.tracing import Tracing
from app.db.engine import create_engine, create_probe_engine, create_sessionmaker
from app.db.observe import observed_engine
from app.db.tracing import traced_sql
from app.users.service import OperatorService

log = structlog.get_logger(__name__)
# Closing a pool waits on its server; one that no longer answers must not hold
# the process past the grace period its orchestrator gives it.
CLOSE_TIMEOUT_SECONDS = 5.0


def create_app(
    settings: Settings | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """For tests: `span_exporter` replaces the OTLP exporter and turns tracing on,
    `clock` replaces the real time."""
    settings = settings or Settings()
    configure_logging(settings)
    tracing = Tracing(settings, exporter=span_exporter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # By the time this shutdown runs the server has drained (readiness 503
        # while serving, see app/core/workers.py) and requests in flight are done.
        async with open_resources(settings, clock) as resources:
            app.state.resources = resources
            with (
                tracing.exporting(),
                observed_engine(resources.engine, settings, tracing),
                _traced_probe(resources, tracing),
                tracing.traced_redis(resources.redis),
                resources.rate_limiter.traced(tracing.tracer_if_enabled("app.ratelimit")),
            ):
                await _ensure_first_admin(resources)
                for caution in settings.production_cautions:
                    log.warning("config.production_caution", caution=caution)
                log.info("app.started", env=settings.app_env)
                async with _jobs_in_process(resources, tracing):
                    yield
        log.info("app.stopped")

    app = FastAPI(
        title="Groundwork",
        version="0.1.0",
        description="A production-grade FastAPI backend template.",
        lifespan=lifespan,
        middleware=build_middleware(settings, tracer=tracing.request_tracer()),
        debug=settings.debug,
        telemetry=tracing.fastapi_config(),
        # /docs and /redoc are served by install_docs, from local files with their own CSP.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.tracing = tracing
    install_error_handlers(app)
    install_openapi(app)
    if settings.docs_enabled:
        install_docs(app)
    # Flat: a request finds its route in one list, not by walking nested routers.
    include(app, health.router)
    include(app, metrics.router)
    include(app, v1.router)
    index_static_paths(app)
    serve_fixed_answers(app)
    return app


@asynccontextmanager
async def open_resources(
    settings: Settings, clock: Clock | None = None
) -> AsyncIterator[Resources]:
    clock = clock or Clock()
    engine = create_engine(settings)
    redis = create_redis(settings)
    resources = Resources(
        settings=settings,
        engine=engine,
        probe_engine=create_probe_engine(settings),
        sessionmaker=create_sessionmaker(engine),
        hasher=PasswordHasher(settings),
        tokens=AccessTokenCodec(settings, clock=clock),
        cursors=CursorCodec(settings.secret_key.get_secret_value().encode()),
        keyring=DataKeyring.from_settings(settings),
        mailer=create_mailer(settings),
        redis=redis,
        rate_limiter=RateLimiter(
            redis,
            rules_from(settings),
            timeout_seconds=settings.rate_limit_storage_timeout_seconds,
            fail_open=settings.rate_limit_fail_open,
            clock=clock,
        ),
        token_subjects=TokenSubjects(AccessTokenCodec(settings, clock=clock)),
        clock=clock,
        permissions=CATALOGUE,
    )
    try:
        yield resources
    finally:
        resources.shutting_down = True
        resources.hasher.close()
        closing: dict[str, Awaitable[Any]] = {
            "rate_limiter": resources.rate_limiter.aclose(),
            "engine": engine.dispose(),
            "probe_engine": resources.probe_engine.dispose(),
        }
        if redis is not None:
            closing["redis"] = redis.aclose()
        # Side by side, each bounded: one stuck pool neither delays nor skips the others.
        await asyncio.gather(*(_close(name, step) for name, step in closing.items()))


async def _close(name: str, step: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await step
    except TimeoutError:
        log.warning("app.close_timed_out", resource=name, timeout_seconds=CLOSE_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("app.close_failed", resource=name, error=type(exc).__name__)


@asynccontextmanager
async def _jobs_in_process(resources: Resources, tracing: Tracing) -> AsyncIterator[None]:
    """The outbox worked by this process while it serves, when no worker does (no REDIS_URL)."""
    settings = resources.settings
    if not settings.runs_jobs_in_process:
        yield
        return
    # Here, not at the top: a process that leaves the jobs to a worker never loads them.
    from app.jobs.loop import Heartbeat, run_in_process
    from app.jobs.registry import HANDLERS, SCHEDULE
    from app.jobs.runner import JobRunner
    from app.jobs.schedule import Scheduler

    runner = JobRunner(resources, HANDLERS, tracer=tracing.tracer("app.jobs"))
    stop = asyncio.Event()
    loop = asyncio.create_task(
        run_in_process(
            runner,
            Scheduler(resources, SCHEDULE),
            stop,
            Heartbeat(settings.worker_heartbeat_timeout_seconds),
        )
    )
    try:
        yield
    finally:
        stop.set()
        # The job in hand is finished (it has its own timeout); the rest wait in the outbox.
        try:
            async with asyncio.timeout(settings.jobs_timeout_seconds + CLOSE_TIMEOUT_SECONDS):
                await loop
        except TimeoutError:
            log.warning("jobs.stop_timed_out")


@contextmanager
def _traced_probe(resources: Resources, tracing: Tracing) -> Iterator[None]:
    """The readiness check's SQL under its request's span; no pool, so no pool metrics."""
    if not tracing.enabled:
        yield
        return
    with traced_sql(resources.probe_engine, tracing.tracer("app.db")):
        yield


async def _ensure_first_admin(resources: Resources) -> None:
    settings = resources.settings
    if not settings.first_admin_email or settings.first_admin_password is None:
        return
    async with resources.sessionmaker() as session:
        created = await OperatorService(session, resources).ensure_admin(
            settings.first_admin_email, settings.first_admin_password.get_secret_value()
        )
    log.info("app.first_admin", created=created)
