"""Connections of the limiter's own, for the script call that every API request makes.

Through the client, one command passes its retry wrapper, its observability
hooks, the pool's lock and bookkeeping, and a packer that takes any
argument; its reply then comes up through asyncio's streams and redis-py's
reader: as much work as the round trip itself, on every API request. The
limiter sends its one command, packed once per limit (redis_window.py), on
connections taken from a list here and put back: in one event loop that is
all a pool has to do.

Each connection is opened by the client's own pool, so it reaches the same
server, database and credentials over the same transport (TLS included),
with the same handshake. Then the transport is taken over: a protocol of
ours receives the bytes and hiredis, the C parser redis-py itself uses,
turns them into the reply the one waiting call is given. One command is in
flight on a connection at a time, so a reply always answers the call that
is waiting.

There is no socket timeout: each call is already bounded by the guard
(RATE_LIMIT_STORAGE_TIMEOUT_SECONDS, guard.py). A connection whose call
failed or was cancelled before its reply came is closed, as its reply may
still arrive; so is one that receives bytes nobody asked for, or that the
server closed (a restart, an idle timeout): the next call opens a new one.

A command sent while a sampled request is traced gets a client span, with
the attributes the redis-py instrumentation gives the client's commands
(the command's arguments each written as `?`), as a child of the request's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hiredis
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


class Connections:
    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        self._idle: list[_Line] = []
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
        line = await self._take()
        try:
            reply = await line.ask(command)
        except BaseException:
            # Cancelled or failed before its reply came: the reply may still
            # come, and would answer the next call.
            line.close()
            raise
        self._idle.append(line)
        if isinstance(reply, ResponseError):
            # An error reply ends the exchange like any other: the connection stays good.
            raise NoScriptError(str(reply)) if str(reply).startswith("NOSCRIPT") else reply
        return reply

    async def _take(self) -> _Line:
        while self._idle:
            line = self._idle.pop()
            if line.usable:
                return line
        return await _open(self._pool.make_connection())  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for line in idle:
            line.close()


async def _open(connection: AbstractConnection) -> _Line:
    """A connection made and set up by redis-py (TLS, AUTH, SELECT, HELLO), then taken over."""
    await connection.connect()  # type: ignore[no-untyped-call]
    writer = connection._writer
    if writer is None:
        raise RedisConnectionError("the connection closed while it was set up")
    # redis-py's connection forgets the transport (it neither reads from it
    # nor closes it again); the line owns it from here.
    connection._writer = connection._reader = None
    line = _Line(writer)
    writer.transport.set_protocol(line)
    return line


class _Line(asyncio.Protocol):
    """One connection: a command written, its reply parsed as its bytes arrive."""

    __slots__ = ("_parser", "_transport", "_waiter", "_writer", "usable")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        # Kept, not used: a stream writer that is collected closes its transport.
        self._writer = writer
        self._transport = writer.transport
        self._parser = hiredis.Reader(replyError=ResponseError)
        self._waiter: asyncio.Future[Any] | None = None
        self.usable = True

    def ask(self, command: bytes) -> asyncio.Future[Any]:
        """Write `command`; the future is its reply (an error reply as a ResponseError)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(command)
        return waiter

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            # Nothing asked for it, or its call gave up: the stream is out of step.
            self.close()
            return
        self._parser.feed(data)
        try:
            reply = self._parser.gets()
        except hiredis.ProtocolError as exc:
            self.close()
            waiter.set_exception(RedisConnectionError(f"not a Redis reply: {exc}"))
            return
        if reply is False:  # not all of it yet
            return
        self._waiter = None
        if self._parser.has_data():
            # More than the one reply asked for: it would answer the next call.
            self.close()
        waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(RedisConnectionError("Redis closed the connection"))

    def close(self) -> None:
        self.usable = False
        self._waiter = None
        self._transport.close()
