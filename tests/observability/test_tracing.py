"""Traces: a server span per request, SQL (and Redis) client spans beneath it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from app.core.config import Settings
from app.main import create_app
from app.web.deps import SessionDep
from tests.conftest import AccountFactory, client_for
from tests.observability.conftest import Traced

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"


def traceparent(sampled: bool) -> str:
    return f"00-{TRACE_ID}-{PARENT_SPAN_ID}-{'01' if sampled else '00'}"


async def test_a_request_span_has_its_sql_statements_as_children(traced: Traced) -> None:
    response = await traced.client.get("/health/ready")

    server = traced.server_span(response.headers["X-Request-ID"])
    assert server.name == "GET /health/ready"
    assert (server.attributes or {})["http.route"] == "/health/ready"
    assert (server.attributes or {})["http.response.status_code"] == 200
    children = [
        span
        for span in traced.spans()
        if span.parent and span.parent.span_id == server.context.span_id
    ]
    sql = [span for span in children if span.kind is SpanKind.CLIENT]
    assert sql, [span.name for span in traced.spans()]
    [ping] = [
        span for span in sql if "SELECT 1" in str((span.attributes or {}).get("db.query.text"))
    ]
    assert (ping.attributes or {})["db.system.name"] in {"sqlite", "postgresql"}
    assert ping.name.startswith("SELECT ")
    assert all(span.context.trace_id == server.context.trace_id for span in sql)


async def test_a_failed_statement_is_a_failed_span_and_fails_the_request_as_before(
    traced: Traced,
) -> None:
    @traced.app.get("/bad-sql-for-test")
    async def bad_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT * FROM no_such_table"))

    response = await traced.client.get("/bad-sql-for-test")

    assert response.status_code == 500
    server = traced.server_span(response.headers["X-Request-ID"])
    [failed] = [
        span
        for span in traced.spans()
        if span.parent
        and span.parent.span_id == server.context.span_id
        and "no_such_table" in str((span.attributes or {}).get("db.query.text"))
    ]
    assert failed.kind is SpanKind.CLIENT
    assert failed.name.startswith("SELECT ")
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"]
    assert failed.end_time is not None


async def test_statements_outside_a_recorded_request_have_no_span(traced: Traced) -> None:
    response = await traced.client.get("/health/ready", headers={"traceparent": traceparent(False)})

    assert response.status_code == 200
    assert not [span for span in traced.spans() if span.kind is SpanKind.CLIENT]


async def test_a_server_span_carries_the_request_and_answer_with_signatures_redacted(
    traced: Traced,
) -> None:
    response = await traced.client.get("/api/v1/items?limit=5&sig=s3cr3t-signature")

    assert response.status_code == 401
    server = traced.server_span(response.headers["X-Request-ID"])
    attributes = server.attributes or {}
    assert server.name == "GET /api/v1/items"
    assert server.kind is SpanKind.SERVER
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/api/v1/items"
    assert attributes["url.path"] == "/api/v1/items"
    assert attributes["url.query"] == "limit=5&sig=REDACTED"
    assert attributes["http.response.status_code"] == 401
    assert attributes["server.address"] == "testserver"
    assert "error.type" not in attributes


async def test_a_path_no_route_matches_names_its_span_by_the_method_alone(traced: Traced) -> None:
    response = await traced.client.get("/no/such/path")

    assert response.status_code == 404
    server = traced.server_span(response.headers["X-Request-ID"])
    assert server.name == "GET"
    assert "http.route" not in (server.attributes or {})


async def test_a_server_error_marks_its_span_failed(traced: Traced) -> None:
    @traced.app.get("/fail-for-test")
    async def fail() -> None:
        raise RuntimeError("boom")

    response = await traced.client.get("/fail-for-test")

    assert response.status_code == 500
    server = traced.server_span(response.headers["X-Request-ID"])
    assert server.status.status_code is StatusCode.ERROR
    assert (server.attributes or {})["error.type"] == "500"
    assert (server.attributes or {})["http.route"] == "/fail-for-test"


async def test_an_incoming_traceparent_is_continued(traced: Traced) -> None:
    response = await traced.client.get("/health/live", headers={"traceparent": traceparent(True)})

    server = traced.server_span(response.headers["X-Request-ID"])
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_SPAN_ID


async def test_an_unsampled_parent_records_nothing(traced: Traced) -> None:
    await traced.client.get("/health/ready", headers={"traceparent": traceparent(False)})

    assert traced.spans() == []


async def test_the_ratio_sampler_keeps_none_at_zero_but_follows_a_sampled_parent(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK reads its sampler from the standard variables, as in production.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.0")
    exporter = InMemorySpanExporter()
    app = create_app(settings, span_exporter=exporter)
    async with LifespanManager(app), client_for(app) as client:
        await client.get("/health/live")
        followed = await client.get("/health/live", headers={"traceparent": traceparent(True)})
        app.state.tracing.provider.force_flush()

    spans = exporter.get_finished_spans()
    assert [(span.attributes or {}).get("request_id") for span in spans] == [
        followed.headers["X-Request-ID"]
    ]


async def test_metrics_scrapes_are_not_traced(traced: Traced) -> None:
    await traced.client.get("/metrics")

    assert traced.spans() == []


async def test_each_app_keeps_its_own_spans(settings: Settings, traced: Traced) -> None:
    other_exporter = InMemorySpanExporter()
    other = create_app(settings, span_exporter=other_exporter)
    async with LifespanManager(other), client_for(other) as other_client:
        await other_client.get("/health/live")
        other.state.tracing.provider.force_flush()

    assert traced.spans() == []
    assert len(other_exporter.get_finished_spans()) == 1


async def test_tracing_is_off_without_an_otlp_endpoint(settings: Settings) -> None:
    assert settings.otlp_traces_endpoint is None
    app = create_app(settings)

    assert not app.state.tracing.enabled


async def test_a_redis_command_is_a_child_of_its_request(
    settings: Settings, redis_url: str | None, make_account: AccountFactory
) -> None:
    if redis_url is None:
        pytest.skip("needs TEST_REDIS_URL")
    exporter = InMemorySpanExporter()
    app = create_app(settings, span_exporter=exporter)

    @app.get("/touch-redis-for-test")
    async def touch() -> None:
        await app.state.resources.redis.set("observability:test", "1", ex=5)

    async with LifespanManager(app), client_for(app) as client:
        response = await client.get("/touch-redis-for-test")
        app.state.tracing.provider.force_flush()

    spans = exporter.get_finished_spans()
    [server] = [
        s
        for s in spans
        if (s.attributes or {}).get("request_id") == response.headers["X-Request-ID"]
    ]
    [command] = [s for s in spans if s.name == "SET"]
    assert command.kind is SpanKind.CLIENT
    assert command.parent is not None
    assert command.parent.span_id == server.context.span_id
    # Arguments are not recorded: values may be anything a feature stores.
    assert "1" not in str((command.attributes or {}).get("db.statement", ""))


async def test_the_rate_limiters_redis_commands_are_children_of_the_request(
    settings: Settings, redis_url: str | None, make_account: AccountFactory
) -> None:
    if redis_url is None:
        pytest.skip("needs TEST_REDIS_URL")
    account = await make_account()
    exporter = InMemorySpanExporter()
    app = create_app(settings, span_exporter=exporter)

    async with LifespanManager(app), client_for(app) as client:
        assert app.state.resources.rate_limiter.redis_client is not None
        # The default limit (sliding-window counter, on the app's client) ...
        listed = await client.get("/api/v1/items", headers=account.headers)
        # ... and the login limit (moving window, on the client limits builds).
        login = await client.post(
            "/api/v1/auth/token", data={"username": account.email, "password": "wrong password"}
        )
        app.state.tracing.provider.force_flush()

    assert listed.status_code == 200
    assert login.status_code == 401
    spans = exporter.get_finished_spans()

    def redis_spans_of(response: httpx.Response) -> list[ReadableSpan]:
        [server] = [
            s
            for s in spans
            if (s.attributes or {}).get("request_id") == response.headers["X-Request-ID"]
        ]
        return [
            s
            for s in spans
            if s.kind is SpanKind.CLIENT
            and (s.attributes or {}).get("db.system") == "redis"
            and s.parent is not None
            and s.parent.span_id == server.context.span_id
        ]

    # One round trip counts the request and reports what is left.
    [script] = redis_spans_of(listed)
    assert script.name == "EVALSHA"
    assert redis_spans_of(login), [s.name for s in spans]
    attributes = dict(script.attributes or {})
    server = urlsplit(redis_url)
    assert attributes["net.peer.name"] == server.hostname
    assert attributes["net.peer.port"] == (server.port or 6379)
    # The keys name the user: arguments are not recorded.
    statement = str(attributes["db.statement"])
    assert statement.startswith("EVALSHA ? ?")
    assert set(statement.split()[1:]) == {"?"}
    assert attributes["db.redis.args_length"] == len(statement.split())


class _Sink(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, str, str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append(
            (
                self.path,
                self.headers.get("Content-Type", ""),
                self.headers.get("x-collector-key", ""),
                self.rfile.read(length),
            )
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def otlp_sink() -> Iterator[tuple[str, list[tuple[str, str, str, bytes]]]]:
    """A local stand-in for the collector: nothing leaves the machine."""
    received: list[tuple[str, str, str, bytes]] = []
    handler = type("Sink", (_Sink,), {"bodies": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


async def test_spans_go_out_over_otlp_http_when_an_endpoint_is_set(
    settings: Settings,
    otlp_sink: tuple[str, list[tuple[str, str, str, bytes]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, received = otlp_sink
    monkeypatch.setenv("OTEL_SERVICE_NAME", "groundwork-under-test")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=platform,region=local")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=k%3Dv")
    app = create_app(settings.model_copy(update={"otel_exporter_otlp_endpoint": endpoint}))
    async with LifespanManager(app), client_for(app) as client:
        await client.get("/health/live")
    # Leaving the lifespan flushed the batch.

    [(path, content_type, collector_key, body)] = received
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert collector_key == "k=v"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "groundwork-under-test"
    assert attributes["team"] == "platform"
    assert attributes["deployment.environment.name"] == "test"
    names = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert names == ["GET /health/live"]


async def test_spans_name_the_service_groundwork_unless_the_environment_names_another(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    default = create_app(settings, span_exporter=InMemorySpanExporter())
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-api")
    named = create_app(settings, span_exporter=InMemorySpanExporter())

    assert default.state.tracing.provider.resource.attributes["service.name"] == "groundwork"
    assert named.state.tracing.provider.resource.attributes["service.name"] == "billing-api"


def test_the_resource_groups_spans_as_the_sdks_own_would(settings: Settings) -> None:
    # The exporter groups a batch's spans by resource, through its hash and
    # equality: the resource's hash, worked out once, must be the SDK's.
    application = create_app(settings, span_exporter=InMemorySpanExporter())
    resource = application.state.tracing.provider.resource
    same = Resource(resource.attributes, resource.schema_url)

    assert resource == same
    assert hash(resource) == hash(same)
    assert {resource: "spans"}[same] == "spans"
