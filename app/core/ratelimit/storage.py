"""Where counters live: in the process by default, in Redis to share them across replicas."""

from __future__ import annotations

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from redis.asyncio import Redis

KEY_PREFIX = "groundwork:ratelimit"


def create_storage(redis: Redis | None) -> Storage:
    if redis is None:
        return MemoryStorage()
    # limits drives redis-py's asyncio client on the process's own pool, so
    # the project keeps one Redis library and one set of connections. The
    # URI only names the storage kind; connections come from the pool.
    return RedisStorage(
        "async+redis://",
        implementation="redispy",
        key_prefix=KEY_PREFIX,
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]
    )


def redis_client_of(storage: Storage) -> Redis | None:
    """The redis-py client limits built over our pool, so it can be traced like ours.

    limits does not publish it; should a release move it, the limiter's
    commands go untraced and a tracing test says so.
    """
    client = getattr(getattr(storage, "bridge", None), "storage", None)
    return client if isinstance(client, Redis) else None


async def close_storage(storage: Storage) -> None:
    # The in-process store sweeps expired counters in a task of its own.
    timer = getattr(storage, "timer", None)
    if timer is not None and not timer.done():
        timer.cancel()
