"""The limiter's own Redis connections (app/core/ratelimit/connections.py), against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.core.ratelimit.connections import Connections

HANG_GUARD_SECONDS = 30


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


async def call(connections: Connections, *parts: bytes) -> object:
    return await connections.call(command(*parts), parts[0].decode(), {})


@pytest.fixture
async def connections(redis_url: str | None) -> AsyncIterator[Connections]:
    if redis_url is None:
        pytest.skip("needs Redis: TEST_REDIS_URL is unset or does not answer")
    client = Redis.from_url(redis_url)
    ours = Connections(client)
    try:
        yield ours
    finally:
        await ours.aclose()
        await client.aclose()


async def test_calls_at_once_each_get_their_own_reply(connections: Connections) -> None:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        replies = await asyncio.gather(*(call(connections, b"ECHO", b"%d" % n) for n in range(20)))

    assert replies == [b"%d" % n for n in range(20)]


async def test_a_connection_redis_closed_while_idle_is_replaced(
    connections: Connections, redis_client: Redis
) -> None:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        first = await call(connections, b"CLIENT", b"ID")
        # As an idle timeout of the server's (or of a proxy between) would.
        await redis_client.client_kill_filter(_id=str(first))
        await asyncio.sleep(0.2)
        second = await call(connections, b"CLIENT", b"ID")

    assert isinstance(first, int)
    assert isinstance(second, int)
    assert second != first


async def test_a_reply_that_comes_after_its_call_gave_up_never_answers_the_next_call(
    connections: Connections,
) -> None:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                # Redis answers it (nil) after 0.3 s, long after the call gave up.
                await call(connections, b"BLPOP", b"nothing-here", b"0.3")
        answer = await call(connections, b"PING")

    assert answer == b"PONG"


async def test_an_error_reply_is_raised_and_the_connection_goes_on(
    connections: Connections,
) -> None:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        before = await call(connections, b"CLIENT", b"ID")
        with pytest.raises(Exception, match="unknown command"):
            await call(connections, b"NO-SUCH-COMMAND")
        after = await call(connections, b"CLIENT", b"ID")

    assert after == before
