"""Real processes to break: each fault test owns what it stops and kills.

Nothing here touches the machine's shared PostgreSQL or Redis; every server
is private, on its own loopback port and directory, and removed after the
test even when it fails.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

# --- a private Redis ---------------------------------------------------------------

REDIS_START_SECONDS = 10.0


class PrivateRedis:
    """A `redis-server` of the test's own: loopback only, nothing persisted, killed at will."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_loopback_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed")
        self._process = await asyncio.create_subprocess_exec(
            server,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await self._wait_until_it_answers()

    async def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as when a machine or container dies."""
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGKILL)
            async with asyncio.timeout(REDIS_START_SECONDS):
                await process.wait()

    async def _wait_until_it_answers(self) -> None:
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            async with asyncio.timeout(REDIS_START_SECONDS):
                while True:
                    try:
                        await client.ping()
                        return
                    except RedisError:
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A running private Redis; killed after the test whatever happened to it."""
    redis = PrivateRedis(tmp_path)
    try:
        await redis.start()
        yield redis
    finally:
        await redis.kill()


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
