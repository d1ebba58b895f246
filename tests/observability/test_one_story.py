"""One request, told three ways: its log line, its metrics and its trace share their ids."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from app.core.resources import Resources
from tests.factories import create_account
from tests.observability.conftest import LogLines, Traced, scrape, value


async def test_listing_items_yields_one_access_line_metrics_and_a_trace_that_agree(
    traced: Traced, capture_logs: Callable[[], LogLines], password_hash: str
) -> None:
    client = traced.client
    resources = traced.app.state.resources
    assert isinstance(resources, Resources)
    headers = (await create_account(resources, password_hash, "story@example.com")).headers
    labels = {"method": "GET", "route": "/api/v1/items"}
    before = await scrape(client)
    logs = capture_logs()

    response = await client.get("/api/v1/items", headers=headers)

    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    # The log: exactly one access line for the request.
    [line] = logs.access(request_id)
    assert line["route"] == "/api/v1/items"
    assert line["status"] == 200
    assert line["user_id"]
    # The trace: a server span with SQL children, named by the same ids.
    server = traced.server_span(request_id)
    assert line["trace_id"] == format_trace_id(server.context.trace_id)
    assert line["span_id"] == format_span_id(server.context.span_id)
    sql = [
        span
        for span in traced.spans()
        if span.kind is SpanKind.CLIENT
        and span.parent is not None
        and span.parent.span_id == server.context.span_id
    ]
    assert any("items" in str((span.attributes or {}).get("db.query.text")) for span in sql)
    # Nothing but the request and its client calls: no per-send/receive spans.
    trace = [span for span in traced.spans() if span.context.trace_id == server.context.trace_id]
    assert {span.kind for span in trace} == {SpanKind.SERVER, SpanKind.CLIENT}
    # The metrics: samples under the route template, with the trace as exemplar.
    after = await scrape(client)
    assert (
        value(after, "http_requests_total", status="200", **labels)
        - value(before, "http_requests_total", status="200", **labels)
        == 1
    )
    exposition = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    exemplars = [
        row
        for row in exposition.text.splitlines()
        if row.startswith("http_request_duration_seconds_bucket")
        and 'route="/api/v1/items"' in row
        and f'trace_id="{line["trace_id"]}"' in row
    ]
    assert exemplars
