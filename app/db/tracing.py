"""A client span for every SQL statement, from the engine's own events.

opentelemetry-instrumentation-sqlalchemy declares `sqlalchemy<2.1` and, on
2.1, refuses to instrument anything; it also patches `create_engine` for the
whole process and traces through the global provider. These few listeners
work on any SQLAlchemy 2.x, are bound to one engine and one app's tracer,
and come off again when the app stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# Statements are parameterised (no values), but an IN list can still run long.
MAX_STATEMENT_LENGTH = 2048
_SPAN = "_groundwork_span"


@contextmanager
def traced_sql(engine: AsyncEngine, tracer: trace.Tracer) -> Iterator[None]:
    sync_engine = engine.sync_engine
    url = sync_engine.url
    common: dict[str, Any] = {"db.system.name": sync_engine.dialect.name}
    if url.database:
        common["db.namespace"] = url.database
    if url.host:
        common["server.address"] = url.host
    if url.port:
        common["server.port"] = url.port
    namespace = url.database if url.host else sync_engine.dialect.name

    def before(
        _conn: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        # A statement outside a recorded request (start-up, an unsampled
        # request) gets no span: it could never be joined to anything.
        if context is None or not trace.get_current_span().is_recording():
            return
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = tracer.start_span(
            f"{operation} {namespace}",
            kind=SpanKind.CLIENT,
            attributes={
                **common,
                "db.operation.name": operation,
                "db.query.text": statement[:MAX_STATEMENT_LENGTH],
            },
        )
        setattr(context, _SPAN, span)

    def after(
        _conn: Any,
        _cursor: Any,
        _statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        span = getattr(context, _SPAN, None)
        if span is not None:
            span.end()
            setattr(context, _SPAN, None)

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, _SPAN, None)
        if span is not None:
            error = exception_context.original_exception
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
            span.end()
            setattr(exception_context.execution_context, _SPAN, None)

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", before),
        ("after_cursor_execute", after),
        ("handle_error", failed),
    ]
    for name, listener in listeners:
        event.listen(sync_engine, name, listener)
    try:
        yield
    finally:
        for name, listener in listeners:
            event.remove(sync_engine, name, listener)
