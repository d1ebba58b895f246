"""Stopping never waits on a collector that is not there."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from asgi_lifespan import LifespanManager

from app.core.config import Settings
from app.core.tracing import FLUSH_AT_SHUTDOWN_SECONDS
from app.main import create_app
from tests.conftest import client_for

# Far above the bound: what a healthy shutdown must never come near.
MARGIN_SECONDS = 10.0


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """A port that takes connections and never answers: a collector hung or black-holed."""
    # The kernel completes handshakes into the backlog; nobody ever accepts.
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


async def test_shutdown_gives_up_on_a_silent_collector_within_the_flush_bound(
    settings: Settings, silent_collector: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exporter by itself would wait this long for the collector's answer.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "40")
    app = create_app(settings.model_copy(update={"otel_exporter_otlp_endpoint": silent_collector}))
    bound = FLUSH_AT_SHUTDOWN_SECONDS + MARGIN_SECONDS
    manager = LifespanManager(app, shutdown_timeout=bound + 60)
    await manager.__aenter__()
    async with client_for(app) as client:
        response = await client.get("/health/live")
    # A span is queued for export when the process is told to stop.
    assert response.status_code == 200

    stopping = time.monotonic()
    await manager.__aexit__(None, None, None)
    took = time.monotonic() - stopping

    assert took < bound, f"shutdown waited {took:.1f} s on a collector that never answers"
