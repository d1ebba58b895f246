"""Fixtures to read what the app emits: its log lines, its spans, its metrics."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from app.core.logging import output
from app.core.tracing import Tracing
from app.main import create_app
from tests.conftest import client_for


class LogLines:
    """Every line the app's log handler writes, rendered exactly as in production."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def access(self, request_id: str | None = None) -> list[dict[str, Any]]:
        return [
            record
            for record in self.records()
            if record["event"] == "http.request"
            and (request_id is None or record.get("request_id") == request_id)
        ]


@pytest.fixture
def capture_logs() -> Iterator[Callable[[], LogLines]]:
    """Call it once the app is built: the lines it writes from then on, as rendered.

    The app's own events and library records reach one output, so reading
    there sees both kinds of line, rendered by the latest configuration.
    """
    streams: list[io.StringIO] = []

    def attach() -> LogLines:
        lines = LogLines()
        output.add(lines.stream)
        streams.append(lines.stream)
        return lines

    yield attach
    for stream in streams:
        output.remove(stream)


@dataclass
class Traced:
    app: FastAPI
    client: httpx.AsyncClient
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        tracing = self.app.state.tracing
        assert isinstance(tracing, Tracing)
        assert tracing.provider is not None
        tracing.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def server_span(self, request_id: str) -> ReadableSpan:
        matches = [
            span
            for span in self.spans()
            if span.kind.name == "SERVER"
            and (span.attributes or {}).get("request_id") == request_id
        ]
        assert len(matches) == 1, [span.name for span in self.spans()]
        return matches[0]


@pytest.fixture
async def traced(settings: Settings) -> AsyncIterator[Traced]:
    """The app with tracing on, its spans kept in memory instead of leaving the machine."""
    exporter = InMemorySpanExporter()
    application = create_app(settings, span_exporter=exporter)
    async with LifespanManager(application), client_for(application) as http:
        yield Traced(application, http, exporter)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
