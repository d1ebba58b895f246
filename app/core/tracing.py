"""Traces: one OpenTelemetry tracer provider per app, exporting over OTLP/HTTP when configured.

The provider belongs to the app (`app.state.tracing`), never to the global
OpenTelemetry API, so several apps in one process (the test suite) each keep
their own spans. It is built with the app but exports only while the
lifespan runs: the batch processor and its thread start inside the worker
process that serves, never in a parent that forks.

With no OTLP endpoint configured, tracing is off and costs nothing per request.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from redis.asyncio import Redis

from app.core.config import Settings
from app.core.metrics import METRICS_PATH


class Tracing:
    def __init__(self, settings: Settings, *, exporter: SpanExporter | None = None) -> None:
        """`exporter` replaces the OTLP exporter (tests pass an in-memory one)."""
        self._settings = settings
        self._exporter = exporter
        self.provider: TracerProvider | None = None
        if exporter is not None or settings.otlp_traces_endpoint is not None:
            self.provider = TracerProvider(
                sampler=_sampler(settings),
                resource=_resource(settings),
                # The lifespan shuts it down; an atexit hook would keep every
                # provider of a test run alive until the end.
                shutdown_on_exit=False,
            )

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def tracer(self, name: str) -> trace.Tracer:
        if self.provider is None:
            return trace.NoOpTracer()
        return self.provider.get_tracer(name)

    def fastapi_config(self) -> TelemetryConfig:
        """FastAPI's own server spans, on this provider; metrics and logs are ours."""
        return {
            "tracer_provider": self.provider,
            "tracing": self.enabled,
            "metrics": False,
            "logs": False,
            # One server span per request with the SQL and Redis spans as its
            # children: the dependency/endpoint/serialization spans would triple
            # the spans of every request for little a user acts on.
            "operation_spans": False,
            "auto_configure": False,
            "exclude": _is_scrape,
        }

    @contextmanager
    def exporting(self) -> Iterator[None]:
        """Export spans for as long as the block runs; flush what is left at the end."""
        if self.provider is None:
            yield
            return
        exporter = self._exporter or self._otlp_exporter()
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        try:
            yield
        finally:
            self.provider.shutdown()

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
        try:
            yield
        finally:
            RedisInstrumentor.uninstrument_client(client)

    def _otlp_exporter(self) -> SpanExporter:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        settings = self._settings
        headers = settings.otel_exporter_otlp_headers
        return OTLPSpanExporter(
            endpoint=settings.otlp_traces_endpoint,
            headers=_pairs(headers.get_secret_value()) if headers else None,
            timeout=settings.otel_exporter_otlp_timeout / 1000,
        )


def _is_scrape(scope: MutableMapping[str, Any]) -> bool:
    return bool(scope.get("path") == METRICS_PATH)


def _sampler(settings: Settings) -> Sampler:
    ratio = TraceIdRatioBased(settings.otel_traces_sampler_arg)
    samplers: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(ratio),
    }
    return samplers[settings.otel_traces_sampler]


def _resource(settings: Settings) -> Resource:
    attributes: dict[str, str] = {
        **_pairs(settings.otel_resource_attributes),
        "deployment.environment.name": settings.app_env,
    }
    # The spec gives OTEL_SERVICE_NAME precedence over OTEL_RESOURCE_ATTRIBUTES.
    attributes["service.name"] = settings.otel_service_name
    return Resource.create(attributes)


def _pairs(text: str) -> dict[str, str]:
    """The `key=value,key=value` lists of the OTEL_* variables (values percent-encoded)."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            pairs[key.strip()] = unquote(value.strip())
    return pairs
