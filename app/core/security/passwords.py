"""Password hashing off the event loop, with a cap on how many run at once.

argon2id costs tens of milliseconds of CPU and 19 MiB of memory per hash. Run
inline, eight concurrent logins stall every other request; run unbounded in
threads, a login storm still takes every core. A small dedicated pool bounds
both: excess hashes queue while the loop keeps serving, and past
PASSWORD_HASH_QUEUE_LIMIT waiting ones a request is turned away with 503
instead of waiting ever longer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from app.core.config import Settings
from app.core.errors import ServiceUnavailable
from app.core.metrics import PASSWORD_HASH_DURATION, PASSWORD_HASH_QUEUE_WAIT

if TYPE_CHECKING:
    from passlib.context import CryptContext

T = TypeVar("T")

log = structlog.get_logger(__name__)
# A full queue drains in about (limit / concurrency) hash times: about a second.
QUEUE_FULL_RETRY_AFTER_SECONDS = 1
# bcrypt reads no more of a password than this many bytes of its UTF-8 encoding.
BCRYPT_MAX_BYTES = 72


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool = ThreadPoolExecutor(
            max_workers=settings.password_hash_concurrency, thread_name_prefix="password-hash"
        )
        # Running plus waiting hashes; a slot is freed by the worker thread
        # when its hash ends, or when a hash that never started is cancelled.
        self._capacity = settings.password_hash_concurrency + settings.password_hash_queue_limit
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._dummy_hash: str | None = None

    @cached_property
    def _context(self) -> CryptContext:
        # Built by the first hash or check, not at start-up: passlib and its
        # handlers take about 12 ms to load, next to a hash's tens.
        from passlib.context import CryptContext

        settings = self._settings
        # bcrypt stays verifiable so a prototype's user table can be imported;
        # marking it deprecated makes every successful login rehash to argon2id.
        return CryptContext(
            schemes=["argon2", "bcrypt"],
            deprecated=["bcrypt"],
            argon2__type="ID",
            argon2__memory_cost=settings.password_hash_memory_kib,
            argon2__rounds=settings.password_hash_time_cost,
            argon2__parallelism=settings.password_hash_parallelism,
        )

    async def hash(self, password: str) -> str:
        result: str = await self._run("hash", self._context.hash, password)
        return result

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Check a password; the second value is a new hash when the stored one is outdated."""
        return await self._run("verify", self._verify_and_update, password, password_hash)

    def _verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        if self._context.identify(password_hash) != "bcrypt":
            valid, new_hash = self._context.verify_and_update(password, password_hash)
            return bool(valid), new_hash
        # The makers of imported bcrypt hashes cut longer passwords at 72 bytes;
        # the bcrypt package now refuses them instead. Check what bcrypt read,
        # then rehash the whole password. A NUL byte is refused by passlib's
        # bcrypt, so no imported hash can hold one.
        secret = password.encode()[:BCRYPT_MAX_BYTES]
        if b"\x00" in secret or not self._context.verify(secret, password_hash):
            return False, None
        upgraded: str = self._context.hash(password)
        return True, upgraded

    async def _run(self, operation: str, work: Callable[..., T], *args: Any) -> T:
        # Queue wait and hashing time are told apart: a growing wait means the
        # pool is too small for the login rate, a growing duration means the
        # machine or the argon2 parameters changed.
        submitted = time.perf_counter()
        duration = PASSWORD_HASH_DURATION.labels(operation=operation)

        def measured() -> T:
            started = time.perf_counter()
            PASSWORD_HASH_QUEUE_WAIT.observe(started - submitted)
            try:
                return work(*args)
            finally:
                duration.observe(time.perf_counter() - started)

        self._take_slot()
        try:
            future = self._pool.submit(measured)
        except BaseException:
            self._free_slot()
            raise
        future.add_done_callback(self._free_slot)
        return await asyncio.wrap_future(future)

    def _take_slot(self) -> None:
        with self._in_flight_lock:
            full = self._in_flight >= self._capacity
            if not full:
                self._in_flight += 1
        if full:
            log.warning("password_hash.queue_full", capacity=self._capacity)
            raise ServiceUnavailable(
                "Too many password checks are waiting; retry shortly.",
                retry_after_seconds=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )

    def _free_slot(self, _future: Future[Any] | None = None) -> None:
        with self._in_flight_lock:
            self._in_flight -= 1

    async def burn(self, password: str) -> None:
        """Spend the time a real verification would, for an account that does not exist.

        Answering "unknown email" faster than "wrong password" would tell an
        attacker which emails have accounts.
        """
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("groundwork-timing-equaliser")
        await self.verify(password, self._dummy_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
