"""Connections of the limiter's own, for the script call that every API request makes.

Through the client, one command passes its retry wrapper, its observability
hooks, the pool's lock and bookkeeping, and a packer that takes any
argument: as much work as the round trip itself, on every API request. The
limiter sends its one command, packed once per limit (redis_window.py), on
connections taken from a list here and put back: in one event loop that is
all a pool has to do. They are made by the client's own pool, so they reach
the same server, database and credentials over the same transport.

They have no socket timeout: each call is already bounded by the guard
(RATE_LIMIT_STORAGE_TIMEOUT_SECONDS, guard.py), and a timeout of the socket
costs each write a task (Python 3.11) and each read a timer. redis-py
closes a connection whose call failed or was cancelled half-way; it
connects again when next used.

A command sent while a sampled request is traced gets a client span, with
the attributes the redis-py instrumentation gives the client's commands
(the command's arguments each written as `?`), as a child of the request's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError


class Connections:
    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        self._idle: list[AbstractConnection] = []
        self._tracer: Tracer | None = None

    @contextmanager
    def traced(self, tracer: Tracer | None) -> Iterator[None]:
        """Spans from `tracer` for the commands of sampled requests, while the block runs."""
        self._tracer = tracer
        try:
            yield
        finally:
            self._tracer = None

    def span_attributes(self, command: str, arguments: int) -> dict[str, AttributeValue]:
        """What the span of `command` with `arguments` arguments after its name says."""
        server = self._pool.connection_kwargs
        attributes: dict[str, AttributeValue] = {
            "db.system": "redis",
            "db.statement": " ".join([command, *["?"] * arguments]),
            "db.redis.args_length": arguments + 1,
            "db.redis.database_index": server.get("db") or 0,
        }
        if "path" in server:
            attributes["net.peer.name"] = server["path"]
            attributes["net.transport"] = "other"
        else:
            attributes["net.peer.name"] = server.get("host", "localhost")
            attributes["net.peer.port"] = server.get("port", 6379)
            attributes["net.transport"] = "ip_tcp"
        return attributes

    async def call(self, command: bytes, name: str, attributes: dict[str, AttributeValue]) -> Any:
        """Send one packed command and read its reply; an error reply is raised.

        `name` and `attributes` describe it in a span, when there is one.
        """
        if self._tracer is not None and trace.get_current_span().is_recording():
            with self._tracer.start_as_current_span(
                name, kind=SpanKind.CLIENT, attributes=attributes
            ):
                return await self._send(command)
        return await self._send(command)

    async def _send(self, command: bytes) -> Any:
        connection = await self._take()
        try:
            await connection.send_packed_command(command)
            return await connection.read_response()
        finally:
            self._idle.append(connection)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()

    async def _take(self) -> AbstractConnection:
        if not self._idle:
            # The pool's own factory: its settings, without taking it into its count.
            connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            connection.socket_timeout = None
            return connection
        connection = self._idle.pop()
        if connection.is_connected:
            # Something to read before a command is sent: the stream closed
            # (Redis restarted, or its idle timeout struck) or carries what no
            # call asked for. As the pool does, connect afresh rather than
            # fail this call.
            try:
                stale = await connection.can_read()
            except RedisConnectionError:
                stale = True
            if stale:
                await connection.disconnect()
        return connection
