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
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError


class Connections:
    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        self._idle: list[AbstractConnection] = []

    async def call(self, command: bytes) -> Any:
        """Send one packed command and read its reply; an error reply is raised."""
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
