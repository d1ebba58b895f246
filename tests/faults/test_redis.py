"""Redis killed under load: the API keeps answering and the login lockout keeps counting."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import PASSWORD, client_for, login, register
from tests.faults.conftest import PrivateRedis

pytestmark = pytest.mark.faults

TOKEN = "/api/v1/auth/token"
ITEMS = "/api/v1/items"
# Bounds on the load, so a hang fails the test instead of the run.
GUARD_SECONDS = 120
READERS = 4
READS_EACH = 40
GUESSERS = 4
GUESSES_EACH = 10


async def read_items(client: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    codes = []
    for _ in range(READS_EACH):
        codes.append((await client.get(ITEMS, headers=headers)).status_code)
        await asyncio.sleep(0.005)
    return codes


async def guess(client: httpx.AsyncClient, email: str) -> list[int]:
    answers = []
    for n in range(GUESSES_EACH):
        data = {"username": email, "password": f"wrong-{n}"}
        answers.append((await client.post(TOKEN, data=data)).status_code)
    return answers


async def test_killing_redis_under_load_leaves_the_api_answering_and_the_lockout_counting(
    app_factory: Callable[..., FastAPI], private_redis: PrivateRedis
) -> None:
    app = app_factory(redis_url=private_redis.url, rate_limit_login="1000/minute")
    async with LifespanManager(app), asyncio.timeout(GUARD_SECONDS):
        async with client_for(app) as owner:
            await register(owner, "victim@example.com")
            headers = {"Authorization": f"Bearer {await login(owner, 'victim@example.com')}"}
            # Two failures counted while Redis is up: they must not be forgotten.
            before = [(await owner.post(TOKEN, data={"username": "victim@example.com",
                                                     "password": "wrong"})).status_code
                      for _ in range(2)]  # fmt: skip
        guessers = [client_for(app, f"203.0.113.{n}") for n in range(1, GUESSERS + 1)]
        readers = [client_for(app, f"198.51.100.{n}") for n in range(1, READERS + 1)]
        async with asyncio.TaskGroup() as load:
            reads = [load.create_task(read_items(c, headers)) for c in readers]
            guesses = [load.create_task(guess(c, "victim@example.com")) for c in guessers]
            await asyncio.sleep(0.2)
            killed_at = time.monotonic()
            await private_redis.kill()
        for client in (*guessers, *readers):
            await client.aclose()
        async with client_for(app) as owner:
            right = await owner.post(TOKEN, data={"username": "victim@example.com",
                                                  "password": PASSWORD})  # fmt: skip
            live = await owner.get("/health/live")

    assert time.monotonic() > killed_at
    read_codes = Counter(code for task in reads for code in task.result())
    guess_codes = Counter(code for task in guesses for code in task.result())
    assert set(read_codes) == {200}, read_codes
    assert set(guess_codes) <= {401, 429}, guess_codes
    assert before.count(401) + guess_codes[401] <= 5, (before, guess_codes)
    assert right.status_code == 429
    assert live.status_code == 200
