"""Traces: one OpenTelemetry tracer provider per app, exporting over OTLP/HTTP when configured.

The provider belongs to the app (`app.state.tracing`), never to the global
OpenTelemetry API, so several apps in one process (the test suite) each keep
their own spans. It is built with the app but exports only while the
lifespan runs: the batch processor and its thread start inside the worker
process that serves, never in a parent that forks.

With no OTLP endpoint configured, tracing is off and costs nothing per request.
Everything else comes from the standard OTEL_* variables, read by the SDK:
the sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), the resource
(OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), the exporter's headers and
timeout, and OTEL_SDK_DISABLED.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from redis.asyncio import Redis

from app.core.config import Settings

log = structlog.get_logger(__name__)

# At shutdown the spans still queued get this long to reach the collector.
# The exporter alone would keep retrying for its whole timeout (10 s by
# default, OTEL_EXPORTER_OTLP_TIMEOUT) when the collector is unreachable,
# holding a stopping process past the grace period its orchestrator allows.
FLUSH_AT_SHUTDOWN_SECONDS = 5.0


class Tracing:
    def __init__(self, settings: Settings, *, exporter: SpanExporter | None = None) -> None:
        """`exporter` replaces the OTLP exporter (tests pass an in-memory one)."""
        self._settings = settings
        self._exporter = exporter
        self.provider: TracerProvider | None = None
        if exporter is not None or settings.otlp_traces_endpoint is not None:
            # No sampler given: the SDK builds the one OTEL_TRACES_SAMPLER names.
            self.provider = TracerProvider(
                resource=_resource(settings),
                # The lifespan shuts it down; an atexit hook would keep every
                # provider of a test run alive until the end.
                shutdown_on_exit=False,
            )

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def tracer(self, name: str) -> trace.Tracer:
        """The named tracer; one that records nothing when tracing is off."""
        return self.tracer_if_enabled(name) or trace.NoOpTracer()

    def request_tracer(self) -> trace.Tracer | None:
        """The tracer of the server spans the edge layer makes; None when tracing is off."""
        return self.tracer_if_enabled("app.http")

    def tracer_if_enabled(self, name: str) -> trace.Tracer | None:
        """The named tracer, or None when tracing is off (its user then skips its spans' work)."""
        if self.provider is None:
            return None
        return self.provider.get_tracer(name)

    @staticmethod
    def fastapi_config() -> TelemetryConfig:
        """FastAPI's own telemetry off: the edge layer makes the server span.

        FastAPI's costs every request, sampled or not, more than the span is
        worth on a cheap one (app/core/middleware/server_span.py says what).
        Its dependency/endpoint spans stay off too: one server span per request
        with the SQL and Redis spans as its children is what a user acts on.
        """
        return {
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        }

    @contextmanager
    def exporting(self) -> Iterator[None]:
        """Export spans for as long as the block runs; flush what is left at the end."""
        if self.provider is None:
            yield
            return
        exporter = self._exporter or _BuiltOnFirstExport(self._otlp_exporter)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        try:
            yield
        finally:
            _shut_down_within(self.provider, FLUSH_AT_SHUTDOWN_SECONDS)

    @contextmanager
    def traced_redis(self, client: Redis | None) -> Iterator[None]:
        """A client span for every command this client sends, while the block runs."""
        if client is None or self.provider is None:
            yield
            return
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        # Per client and per provider, unlike `RedisInstrumentor().instrument()`,
        # which patches redis-py for the whole process.
        RedisInstrumentor.instrument_client(client, tracer_provider=self.provider)
        # The instrumentation formats the command and starts a span even
        # under a request that is not sampled; such a span is never recorded,
        # so those commands go straight to the client's own method.
        instrumented = client.execute_command
        setattr(client, "execute_command", _traced_only_when_recording(instrumented))  # noqa: B010
        try:
            yield
        finally:
            setattr(client, "execute_command", instrumented)  # noqa: B010
            RedisInstrumentor.uninstrument_client(client)

    def _otlp_exporter(self) -> SpanExporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The endpoint is passed because it may come from `.env`, which the
        # SDK does not read; headers, timeout and compression it reads itself.
        return OTLPSpanExporter(endpoint=self._settings.otlp_traces_endpoint)


class _BuiltOnFirstExport(SpanExporter):
    """An exporter built by the export thread when the first batch leaves.

    Importing the OTLP exporter (requests, protobuf) takes about a tenth of a
    second; built this way it is not on the path from process start to the
    first answer.
    """

    def __init__(self, build: Callable[[], SpanExporter]) -> None:
        self._build = build
        self._built: SpanExporter | None = None
        self._lock = threading.Lock()

    def _exporter(self) -> SpanExporter:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter().export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._built is None or self._built.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self._built is not None:
            self._built.shutdown()


def _traced_only_when_recording(
    instrumented: Callable[..., Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    # The instrumentation wraps the client's own method (wrapt keeps it as `__wrapped__`).
    plain: Callable[..., Awaitable[Any]] = getattr(instrumented, "__wrapped__")  # noqa: B009

    async def execute_command(*args: Any, **kwargs: Any) -> Any:
        if trace.get_current_span().is_recording():
            return await instrumented(*args, **kwargs)
        return await plain(*args, **kwargs)

    return execute_command


def _shut_down_within(provider: TracerProvider, seconds: float) -> None:
    """Flush and stop the provider, giving up on the collector after `seconds`."""
    # The SDK's shutdown takes no bound. In a daemon thread it can be left
    # behind, still exporting, when the process exits.
    flushing = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    flushing.start()
    flushing.join(seconds)
    if flushing.is_alive():
        log.warning("tracing.flush_abandoned", after_seconds=seconds)


class _HashedOnce(Resource):
    """A resource whose hash is worked out once.

    The exporter groups every span of a batch by its resource, and the SDK's
    `Resource.__hash__` renders the attributes as sorted JSON on each call:
    about a sixth of the export thread's work. A resource's attributes
    cannot change, so neither can its hash.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def _resource(settings: Settings) -> Resource:
    # The SDK adds OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; without a
    # service name of the operator's, the spans say "groundwork".
    resource = Resource.create({"deployment.environment.name": settings.app_env})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "groundwork"}))
    return _HashedOnce(resource)
