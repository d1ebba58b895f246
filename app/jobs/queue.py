"""The queue in Redis: taskiq's list broker, carrying outbox ids and nothing else.

A message is only a pointer to an outbox row: when Redis loses the list
(restarted empty, flushed), the relay queues the rows again after
JOBS_REQUEUE_AFTER_SECONDS, and nothing is lost. Delivery is therefore at
least once; the runner's claim on the row makes a duplicate a no-op.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq_redis import ListQueueBroker

log = structlog.get_logger(__name__)

QUEUE_NAME = "groundwork:jobs"
TASK_NAME = "groundwork.run_job"
# How long one BRPOP waits before asking again; a socket must outlast it.
_POP_SECONDS = 2
_RECONNECT_SECONDS = 1.0


class JobQueue(ListQueueBroker):
    """taskiq's Redis list broker; while Redis is away its listener waits instead of spinning."""

    def __init__(self, url: str, *, timeout_seconds: float) -> None:
        super().__init__(
            url,
            queue_name=QUEUE_NAME,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=_POP_SECONDS + timeout_seconds,
        )

    async def listen(self) -> AsyncGenerator[bytes, None]:
        while True:
            try:
                async with Redis(connection_pool=self.connection_pool) as redis:
                    popped = await redis.brpop([self.queue_name], timeout=_POP_SECONDS)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("jobs.queue_unreachable", error=type(exc).__name__)
                await asyncio.sleep(_RECONNECT_SECONDS)
                continue
            if popped is not None:
                message = popped[1]
                yield message.encode() if isinstance(message, str) else message

    async def depth(self) -> int:
        """Messages waiting in Redis (not the jobs' truth: that is the outbox)."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            return int(await redis.llen(self.queue_name))
