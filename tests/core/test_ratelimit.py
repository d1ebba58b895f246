"""Rate limits: counted exactly, shared by replicas, keyed on the real caller, never a 500."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import STRATEGIES
from limits.aio.strategies import RateLimiter as LimitsStrategy
from pydantic import ValidationError
from redis.asyncio import Redis

from app.core.errors import problem_type
from app.core.ratelimit import LimitName, client_key
from app.core.ratelimit.guard import FAILURES_BEFORE_PAUSE, PAUSE_SECONDS, StorageGuard
from app.core.ratelimit.lockout import LockedOut, LoginLockout, MemoryCounters, Window
from app.core.ratelimit.redis_window import KEY_PREFIX, RedisWindows, Strategy
from app.core.ratelimit.subjects import TokenSubjects
from app.core.resources import Resources
from app.core.security.tokens import AccessTokenCodec
from app.main import create_app
from tests.factories import create_account
from tests.helpers import SettableClock, bearer, client_for, make_settings, sign_up

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
# Only guards against a hang failing the run forever; not a timing assertion.
HANG_GUARD_SECONDS = 60
# Generous, so a loaded machine never turns a slow answer into a fail-open pass.
PATIENT_STORAGE_TIMEOUT = 2.0
ITEMS = "/api/v1/items"

AppFactory = Callable[..., FastAPI]
NEEDS_REDIS = (
    "needs Redis: TEST_REDIS_URL is unset or does not answer (e.g. redis://127.0.0.1:6379/15)"
)


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest, redis_url: str | None) -> str | None:
    """The REDIS_URL to run a test with: None for in-process storage, or the test Redis."""
    if request.param == "memory":
        return None
    if redis_url is None:
        pytest.skip(NEEDS_REDIS)
    return redis_url


@pytest.fixture
def redis_only(redis_url: str | None) -> str:
    if redis_url is None:
        pytest.skip(NEEDS_REDIS)
    return redis_url


@pytest.fixture
def build(database_url: str) -> AppFactory:
    def factory(**overrides: Any) -> FastAPI:
        overrides.setdefault("rate_limit_storage_timeout_seconds", PATIENT_STORAGE_TIMEOUT)
        return create_app(make_settings(database_url, **overrides))

    return factory


@asynccontextmanager
async def serving(
    application: FastAPI, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(application), client_for(application, address) as http:
        yield http


def resources_of(application: FastAPI) -> Resources:
    resources = application.state.resources
    assert isinstance(resources, Resources)
    return resources


async def signed_in(application: FastAPI, password_hash: str, email: str) -> dict[str, str]:
    """An account made in the app's database, with its Authorization header."""
    return (await create_account(resources_of(application), password_hash, email)).headers


def assert_rate_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == problem_type("rate-limited")
    assert body["status"] == 429
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) >= 1


# --- counting --------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "moving-window", "fixed-window"])
async def test_fifty_parallel_requests_against_a_limit_of_ten_let_exactly_ten_through(
    build: AppFactory, storage: str | None, strategy: str, password_hash: str
) -> None:
    application = build(
        redis_url=storage, rate_limit_default="10/hour", rate_limit_strategy=strategy
    )
    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        headers = await signed_in(application, password_hash, "parallel@example.com")
        responses = await asyncio.gather(*(http.get(ITEMS, headers=headers) for _ in range(50)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [429] * 40
    remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in responses if r.is_success)
    if storage is not None and strategy == "sliding-window-counter":
        # Counted and reported by one script: each request sees its own count.
        assert remaining == list(range(10))
    else:
        # Reported by a second call, so parallel requests may see the same later state.
        assert all(0 <= left < 10 for left in remaining)


async def test_the_limiter_primitive_counts_exactly_under_concurrency(
    build: AppFactory, storage: str | None
) -> None:
    application = build(redis_url=storage, login_lockout_account="10/hour")
    async with LifespanManager(application):
        limiter = resources_of(application).rate_limiter
        decisions = await asyncio.gather(
            *(limiter.hit(LimitName.LOGIN_LOCKOUT_ACCOUNT, "crowd@example.com") for _ in range(50))
        )

    assert sum(decision.allowed for decision in decisions) == 10


async def test_two_app_instances_on_one_redis_share_a_limit(
    build: AppFactory, redis_only: str
) -> None:
    first = build(redis_url=redis_only, rate_limit_default="4/hour")
    second = build(redis_url=redis_only, rate_limit_default="4/hour")

    async with serving(first) as one, serving(second) as two:
        answers = [await (one if turn % 2 == 0 else two).get(ITEMS) for turn in range(6)]

    # Unauthenticated, so counted per client address: 4 in all, whichever replica answers.
    assert [answer.status_code for answer in answers] == [401] * 4 + [429] * 2
    assert_rate_limited(answers[4], limit=4)
    assert_rate_limited(answers[5], limit=4)


# --- what is counted, and where ---------------------------------------------------


async def test_each_signed_in_user_has_a_budget_of_their_own(build: AppFactory) -> None:
    application = build(rate_limit_default="3/hour")
    async with serving(application) as http, client_for(application, "192.0.2.2") as other:
        # Signing up spends 2 of the client address's 3, not the users' budgets.
        alice = bearer(await sign_up(http, "alice@example.com"))
        bob = bearer(await sign_up(other, "bob@example.com"))
        alice_answers = [(await http.get(ITEMS, headers=alice)).status_code for _ in range(4)]
        bob_answer = await http.get(ITEMS, headers=bob)
        anonymous = await http.get(ITEMS)

    assert alice_answers == [200, 200, 200, 429]
    assert bob_answer.status_code == 200
    assert bob_answer.headers["X-RateLimit-Remaining"] == "2"
    assert anonymous.status_code == 401
    assert anonymous.headers["X-RateLimit-Remaining"] == "0"


async def test_a_forged_token_is_counted_against_the_client_address(build: AppFactory) -> None:
    application = build(rate_limit_default="2/hour")
    async with serving(application) as http:
        statuses = [
            (await http.get(ITEMS, headers={"Authorization": f"Bearer forged-{n}"})).status_code
            for n in range(3)
        ]

    assert statuses == [401, 401, 429]


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_cannot_dodge_a_limit(
    build: AppFactory,
) -> None:
    application = build(rate_limit_default="3/hour")
    async with serving(application, "198.51.100.7") as http:
        statuses = [
            (await http.get(ITEMS, headers={"X-Forwarded-For": f"203.0.113.{n}"})).status_code
            for n in range(5)
        ]

    assert statuses == [401, 401, 401, 429, 429]


async def test_clients_behind_a_trusted_proxy_are_counted_apart(build: AppFactory) -> None:
    application = build(rate_limit_default="1/hour", trusted_proxies="10.0.0.0/8")
    async with serving(application, "10.1.2.3") as proxy:
        first = await proxy.get(ITEMS, headers={"X-Forwarded-For": "203.0.113.1"})
        second = await proxy.get(ITEMS, headers={"X-Forwarded-For": "203.0.113.2"})
        again = await proxy.get(ITEMS, headers={"X-Forwarded-For": "203.0.113.1"})

    assert (first.status_code, second.status_code) == (401, 401)
    assert_rate_limited(again, limit=1)


async def test_an_ipv6_client_cannot_dodge_a_limit_by_moving_within_its_64(
    build: AppFactory,
) -> None:
    application = build(rate_limit_default="2/hour")
    addresses = ["2001:db8:1:2::1", "2001:db8:1:2:aaaa::7", "2001:db8:1:2:ffff::1"]
    async with serving(application, addresses[0]) as first:
        statuses = [(await first.get(ITEMS)).status_code]
        for address in addresses[1:]:
            async with client_for(application, address) as moved:
                statuses.append((await moved.get(ITEMS)).status_code)
        async with client_for(application, "2001:db8:1:3::1") as next_door:
            neighbour = await next_door.get(ITEMS)

    assert statuses == [401, 401, 429]
    assert neighbour.status_code == 401


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8:0:0:ffff::1", "2001:db8::/64"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_the_budget_of_a_client_address(address: str | None, key: str) -> None:
    assert client_key(address) == key


@pytest.mark.parametrize(
    ("setting", "method", "path", "body"),
    [
        ("rate_limit_login", "POST", "/api/v1/auth/token", {"data": {}}),
        ("rate_limit_register", "POST", "/api/v1/auth/register", {"json": {}}),
        ("rate_limit_refresh", "POST", "/api/v1/auth/refresh", {"json": {}}),
        ("rate_limit_password_reset", "POST", "/api/v1/auth/password-reset/request", {"json": {}}),
        ("rate_limit_password_reset", "POST", "/api/v1/auth/password-reset/confirm", {"json": {}}),
    ],
)
async def test_auth_routes_have_their_own_stricter_limit(
    build: AppFactory, setting: str, method: str, path: str, body: dict[str, Any]
) -> None:
    application = build(**{setting: "2/hour"})
    async with serving(application) as http:
        answers = [await http.request(method, path, **body) for _ in range(3)]

    # Invalid bodies are counted too: the limit is checked before anything else.
    assert [answer.status_code for answer in answers] == [422, 422, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert answers[0].headers["X-RateLimit-Remaining"] == "1"
    assert_rate_limited(answers[2], limit=2)


async def test_both_reset_routes_share_one_budget(build: AppFactory) -> None:
    application = build(rate_limit_password_reset="2/hour")
    async with serving(application) as http:
        request = await http.post("/api/v1/auth/password-reset/request", json={})
        confirm = await http.post("/api/v1/auth/password-reset/confirm", json={})
        again = await http.post("/api/v1/auth/password-reset/request", json={})

    assert (request.status_code, confirm.status_code) == (422, 422)
    assert_rate_limited(again, limit=2)


# --- headers -------------------------------------------------------------------


async def test_every_answer_of_a_limited_route_carries_the_rate_limit_headers(
    build: AppFactory, password_hash: str
) -> None:
    application = build()
    async with serving(application) as http:
        headers = await signed_in(application, password_hash, "headers@example.com")
        ok = await http.get(ITEMS, headers=headers)
        missing = await http.get(f"{ITEMS}/00000000-0000-0000-0000-000000000000", headers=headers)
        unauthenticated = await http.get(ITEMS)

    for answer in (ok, missing, unauthenticated):
        assert answer.headers["X-RateLimit-Limit"] == "600"
        assert 0 <= int(answer.headers["X-RateLimit-Remaining"]) < 600
        assert int(answer.headers["X-RateLimit-Reset"]) >= 0
    assert (ok.status_code, missing.status_code, unauthenticated.status_code) == (200, 404, 401)
    assert ok.headers["X-RateLimit-Remaining"] == "599"


async def test_the_login_route_reports_its_tighter_limit(build: AppFactory) -> None:
    application = build()
    async with serving(application) as http:
        answer = await http.post("/api/v1/auth/token", data={"username": "a@b.c", "password": "x"})

    assert answer.status_code == 401
    assert answer.headers["X-RateLimit-Limit"] == "30"
    assert answer.headers["X-RateLimit-Remaining"] == "29"


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics"])
async def test_operations_endpoints_are_never_limited(build: AppFactory, path: str) -> None:
    application = build(rate_limit_default="1/hour")
    async with serving(application) as http:
        answers = [await http.get(path) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [200] * 5
    assert all("X-RateLimit-Limit" not in answer.headers for answer in answers)


async def test_limits_can_be_switched_off(build: AppFactory) -> None:
    application = build(rate_limit_enabled=False, rate_limit_default="1/hour")
    async with serving(application) as http:
        answers = [await http.get(ITEMS) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [401] * 3
    assert "X-RateLimit-Limit" not in answers[-1].headers


def test_openapi_documents_the_429_and_the_headers_of_every_limited_operation(
    build: AppFactory,
) -> None:
    schema = build().openapi()

    for path, path_item in schema["paths"].items():
        for operation in path_item.values():
            responses = operation["responses"]
            if path.startswith("/api/"):
                assert "429" in responses, path
                assert "Retry-After" in responses["429"]["headers"]
                for response in responses.values():
                    assert "X-RateLimit-Remaining" in response["headers"], path
            else:
                assert "429" not in responses, path


# --- when the storage fails -------------------------------------------------------


async def test_a_stopped_redis_lets_the_api_answer_and_readiness_stay_200(
    build: AppFactory, password_hash: str
) -> None:
    application = build(redis_url=CLOSED_PORT_REDIS, rate_limit_default="1/hour")
    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        headers = await signed_in(application, password_hash, "no-redis@example.com")
        items = [await http.get(ITEMS, headers=headers) for _ in range(5)]
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")

    assert [answer.status_code for answer in items] == [200] * 5
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "unavailable"
    assert "127.0.0.1" not in ready.text
    assert live.status_code == 200


async def test_a_stopped_redis_with_fail_closed_refuses_with_503_not_500(
    build: AppFactory,
) -> None:
    application = build(redis_url=CLOSED_PORT_REDIS, rate_limit_fail_open=False)
    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        answers = [await http.get(ITEMS) for _ in range(4)]
        live = await http.get("/health/live")

    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"] == problem_type("service-unavailable")
        assert int(answer.headers["Retry-After"]) >= 1
    assert live.status_code == 200


async def test_a_redis_that_never_answers_is_given_up_on_after_the_storage_timeout(
    build: AppFactory, silent_port: int
) -> None:
    application = build(
        redis_url=f"redis://127.0.0.1:{silent_port}/0",
        rate_limit_storage_timeout_seconds=0.05,
        health_check_timeout_seconds=0.2,
    )
    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        answers = [await http.get(ITEMS) for _ in range(3)]
        ready = await http.get("/health/ready")

    assert [answer.status_code for answer in answers] == [401] * 3
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "unavailable"


# --- the login lockout's counters ---------------------------------------------


async def attempts(lockout: LoginLockout, email: str, client: str, n: int) -> list[bool]:
    """Whether each of `n` concurrent attempts was counted (True) or locked out (False)."""

    async def one() -> bool:
        try:
            await lockout.attempt(email, client)
        except LockedOut:
            return False
        return True

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_the_lockout_counts_exactly_its_limit_of_concurrent_attempts(
    build: AppFactory, storage: str | None
) -> None:
    application = build(redis_url=storage, login_lockout_account="5/15 minutes")
    async with LifespanManager(application):
        lockout = resources_of(application).rate_limiter.lockout
        counted = await attempts(lockout, "victim@example.com", "192.0.2.1", 50)
        other = await attempts(lockout, "other@example.com", "192.0.2.1", 1)
        with pytest.raises(LockedOut) as refused:
            await lockout.attempt("VICTIM@example.com", "192.0.2.2")

    assert counted.count(True) == 5
    assert other == [True]
    retry_after = int(refused.value.headers["Retry-After"])
    assert 1 <= retry_after <= 15 * 60


async def test_a_success_clears_the_account_and_gives_the_client_its_attempt_back(
    build: AppFactory, storage: str | None
) -> None:
    application = build(
        redis_url=storage, login_lockout_account="3/15 minutes", login_lockout_client="3/15 minutes"
    )
    async with LifespanManager(application):
        lockout = resources_of(application).rate_limiter.lockout
        failed = [await lockout.attempt("a@example.com", "192.0.2.1") for _ in range(2)]
        for _ in range(10):
            await lockout.succeeded(await lockout.attempt("a@example.com", "192.0.2.1"))
        # Two failures stand: one more attempt fits, whichever account it is for.
        after = await attempts(lockout, "b@example.com", "192.0.2.1", 3)

    assert len(failed) == 2
    assert after.count(True) == 1


async def test_the_default_limit_fails_open_on_a_stopped_redis(build: AppFactory) -> None:
    application = build(redis_url=CLOSED_PORT_REDIS, rate_limit_default="1/hour")
    async with LifespanManager(application), asyncio.timeout(HANG_GUARD_SECONDS):
        limiter = resources_of(application).rate_limiter
        decisions = [await limiter.hit(LimitName.DEFAULT, "client", "x") for _ in range(3)]

    assert all(decision.allowed for decision in decisions)


@pytest.mark.parametrize("store", ["stopped", "hung"])
async def test_security_limits_count_in_the_process_when_redis_is_stopped_or_hung(
    build: AppFactory, silent_port: int, store: str
) -> None:
    port = 1 if store == "stopped" else silent_port
    application = build(
        redis_url=f"redis://127.0.0.1:{port}/0",
        rate_limit_storage_timeout_seconds=0.05,
        # Fail-open lets the default limit through; the others must count anyway.
        rate_limit_fail_open=True,
        rate_limit_password_reset="3/hour",
        rate_limit_register="2/hour",
    )
    reset: dict[str, Any] = {"json": {"email": "someone@example.com"}}
    register: dict[str, Any] = {"json": {"email": "new@example.com", "password": "x"}}
    async with serving(application) as http, asyncio.timeout(HANG_GUARD_SECONDS):
        resets = [await http.post("/api/v1/auth/password-reset/request", **reset) for _ in range(5)]
        registers = [await http.post("/api/v1/auth/register", **register) for _ in range(3)]

    assert [answer.status_code for answer in resets] == [202] * 3 + [429] * 2
    assert_rate_limited(resets[-1], limit=3)
    assert [answer.status_code for answer in registers][-1] == 429


# --- the one-round-trip windows on Redis -------------------------------------------

# limits' own counters, for reference, under a prefix of their own on the same Redis.
REFERENCE_PREFIX = "reference"
SLIDING: Strategy = "sliding-window-counter"
Windows = tuple[RedisWindows, Redis]


@pytest.fixture
async def windows(redis_only: str) -> AsyncIterator[Windows]:
    """The app's Redis windows, and the Redis they count in."""
    redis = Redis.from_url(redis_only)
    ours = RedisWindows(redis, KEY_PREFIX)
    try:
        yield ours, redis
    finally:
        await ours.aclose()
        await redis.aclose()


def reference(redis: Redis, strategy: str) -> LimitsStrategy:
    """limits' own strategy over Redis: the answers the app's scripts must give."""
    storage = RedisStorage(
        "async+redis://",
        implementation="redispy",
        key_prefix=REFERENCE_PREFIX,
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]
    )
    build: Callable[[RedisStorage], LimitsStrategy] = STRATEGIES[strategy]
    return build(storage)


Row = tuple[bool, int, float]


async def both(
    ours: RedisWindows, theirs: LimitsStrategy, strategy: Any, item: RateLimitItem, turns: int
) -> tuple[list[Row], list[Row]]:
    our_rows, their_rows = [], []
    for _ in range(turns):
        allowed, stats = await ours.hit(strategy, item, "ours")
        our_rows.append((allowed, stats.remaining, stats.reset_time))
        allowed = await theirs.hit(item, "theirs")
        stats = await theirs.get_window_stats(item, "theirs")
        their_rows.append((allowed, stats.remaining, stats.reset_time))
    return our_rows, their_rows


def comparable(rows: list[Row]) -> list[tuple[bool, int]]:
    return [(allowed, remaining) for allowed, remaining, _ in rows]


def same_resets(ours: list[Row], theirs: list[Row], item: RateLimitItem) -> bool:
    # Within a second, read around the window: limits says "now" where a
    # fresh sliding window's ttl is exactly two windows, the app says "in one window".
    window = item.get_expiry()
    return all(
        abs((a[2] - b[2] + window / 2) % window - window / 2) < 1
        for a, b in zip(ours, theirs, strict=True)
    )


async def test_the_one_trip_window_counts_and_reports_as_limits_does(windows: Windows) -> None:
    ours, redis = windows
    theirs = reference(redis, SLIDING)
    item = parse("5/minute")

    mine, limits_rows = await both(ours, theirs, SLIDING, item, 7)
    assert (
        comparable(mine)
        == comparable(limits_rows)
        == [(True, 4), (True, 3), (True, 2), (True, 1), (True, 0), (False, 0), (False, 0)]
    )
    assert same_resets(mine, limits_rows, item)

    # Half a window later: the full window becomes the previous one, weighted by half.
    await redis.pexpire(ours.keys(SLIDING, item, "ours")[-1], 30_000)
    await redis.pexpire(f"{REFERENCE_PREFIX}:{{{item.key_for('theirs')}}}", 30_000)
    mine, limits_rows = await both(ours, theirs, SLIDING, item, 4)
    assert (
        comparable(mine) == comparable(limits_rows) == [(True, 2), (True, 1), (True, 0), (False, 0)]
    )
    assert same_resets(mine, limits_rows, item)


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
async def test_the_other_windows_count_read_and_clear_as_limits_does(
    windows: Windows, strategy: Strategy
) -> None:
    ours, redis = windows
    theirs = reference(redis, strategy)
    item = parse("5/minute")

    mine, limits_rows = await both(ours, theirs, strategy, item, 7)
    our_peek, our_peek_stats = await ours.test(strategy, item, "ours")
    their_peek = await theirs.test(item, "theirs")
    their_peek_stats = await theirs.get_window_stats(item, "theirs")
    await ours.clear(strategy, item, "ours")
    await theirs.clear(item, "theirs")
    mine_again, limits_again = await both(ours, theirs, strategy, item, 1)

    assert (
        comparable(mine)
        == comparable(limits_rows)
        == [(True, 4), (True, 3), (True, 2), (True, 1), (True, 0), (False, 0), (False, 0)]
    )
    assert same_resets(mine, limits_rows, item)
    assert (our_peek, our_peek_stats.remaining) == (their_peek, their_peek_stats.remaining)
    assert our_peek is False
    assert comparable(mine_again) == comparable(limits_again) == [(True, 4)]
    assert [key async for key in redis.scan_iter(match=f"{REFERENCE_PREFIX}:*")] != []


async def test_what_the_one_trip_window_counts_it_reads_and_clears(
    build: AppFactory, redis_only: str
) -> None:
    application = build(redis_url=redis_only, rate_limit_default="5/minute")
    async with LifespanManager(application):
        limiter = resources_of(application).rate_limiter
        hits = [await limiter.hit(LimitName.DEFAULT, "user", "7") for _ in range(3)]
        peek = await limiter.test(LimitName.DEFAULT, "user", "7")
        await limiter.clear(LimitName.DEFAULT, "user", "7")
        after_clear = await limiter.hit(LimitName.DEFAULT, "user", "7")

    assert [hit.remaining for hit in hits] == [4, 3, 2]
    assert (peek.allowed, peek.remaining) == (True, 2)
    assert after_clear.remaining == 4


async def test_every_counter_in_redis_is_under_the_apps_own_prefix(
    build: AppFactory, redis_only: str, redis_client: Redis
) -> None:
    application = build(redis_url=redis_only)
    async with serving(application) as http:
        await http.get(ITEMS)
        await http.post("/api/v1/auth/token", data={"username": "a@example.com", "password": "x"})

    keys = [key.decode() async for key in redis_client.scan_iter(match="*")]
    assert keys
    assert all(key.startswith(f"{KEY_PREFIX}:") for key in keys), keys


async def test_the_one_trip_window_survives_redis_forgetting_its_script(
    windows: Windows,
) -> None:
    # A restarted or failed-over Redis has no scripts loaded: the next call loads it again.
    one_trip, redis = windows
    item = parse("5/minute")
    first = await one_trip.hit(SLIDING, item, "k")

    await redis.script_flush()
    second = await one_trip.hit(SLIDING, item, "k")

    assert (first[0], first[1].remaining) == (True, 4)
    assert (second[0], second[1].remaining) == (True, 3)


async def test_a_refused_request_is_not_counted_and_waits_for_the_window(
    windows: Windows,
) -> None:
    one_trip, _ = windows
    item = parse("2/minute")

    first, first_stats = await one_trip.hit(SLIDING, item, "k")
    answers = [first] + [(await one_trip.hit(SLIDING, item, "k"))[0] for _ in range(2)]
    allowed, refused = await one_trip.hit(SLIDING, item, "k")
    answers.append(allowed)
    _, stats = await one_trip.test(SLIDING, item, "k")
    await one_trip.clear(SLIDING, item, "k")
    again, again_stats = await one_trip.hit(SLIDING, item, "k")

    assert answers == [True, True, False, False]
    assert stats.remaining == 0
    # A window just started ends a whole window from now, not "now".
    assert 59 <= first_stats.reset_time - time.time() <= 60
    assert 59 <= refused.reset_time - time.time() <= 60
    assert (again, again_stats.remaining) == (True, 1)


# --- settings --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "10/minute;1/second", ""])
def test_a_limit_that_is_not_one_limits_expression_stops_start_up(
    database_url: str, value: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        make_settings(database_url, rate_limit_login=value)

    assert "rate_limit_login" in str(exc.value)


def test_the_documented_defaults() -> None:
    settings = make_settings("sqlite+aiosqlite:///unused.db")

    assert settings.rate_limit_default == "600/minute"
    assert settings.rate_limit_login == "30/minute"
    assert settings.rate_limit_register == "20/minute"
    assert settings.rate_limit_refresh == "60/minute"
    assert settings.rate_limit_password_reset == "5/minute"
    assert settings.login_lockout_account == "5/15 minutes"
    assert settings.login_lockout_client == "50/15 minutes"


# --- keying on the token's user ---------------------------------------------------


def test_a_token_subject_is_verified_once_and_forged_tokens_are_not_kept(
    database_url: str,
) -> None:
    settings = make_settings(database_url)
    codec = AccessTokenCodec(settings)
    subjects = TokenSubjects(codec, capacity=2)
    users = [uuid.uuid4() for _ in range(3)]
    tokens = [
        codec.issue(subject=user, session_id=uuid.uuid4(), now=datetime.now(UTC)).token
        for user in users
    ]

    assert subjects.subject_of(tokens[0]) == str(users[0])
    assert subjects.subject_of(tokens[0] + "x") is None
    assert subjects.subject_of("not-a-jwt") is None
    assert subjects.subject_of(tokens[1]) == str(users[1])
    assert subjects.subject_of(tokens[2]) == str(users[2])  # evicts the oldest
    assert len(subjects._known) == 2
    assert subjects.subject_of(tokens[0]) == str(users[0])  # verified again


async def test_after_a_pause_one_call_tries_a_hung_storage_while_the_others_go_on(
    clock: SettableClock,
) -> None:
    guard = StorageGuard(timeout_seconds=0.05, clock=clock)
    tries = 0

    async def hang() -> int:
        nonlocal tries
        tries += 1
        await asyncio.sleep(HANG_GUARD_SECONDS)
        return 1

    for _ in range(FAILURES_BEFORE_PAUSE):
        assert await guard.call("test", hang) is None
    paused = await asyncio.gather(*(guard.call("test", hang) for _ in range(10)))
    clock.advance(PAUSE_SECONDS - 0.001)
    still_paused = await asyncio.gather(*(guard.call("test", hang) for _ in range(10)))
    clock.advance(0.001)
    after_the_pause = await asyncio.gather(*(guard.call("test", hang) for _ in range(10)))

    assert paused == still_paused == after_the_pause == [None] * 10
    # One try per failure before the pause, none during it, one after it.
    assert tries == FAILURES_BEFORE_PAUSE + 1


async def test_a_call_cancelled_from_elsewhere_stays_cancelled_and_is_no_storage_failure(
    clock: SettableClock,
) -> None:
    # A client gone or the request's own deadline: were these counted as
    # failures of the storage, a few of them would pause the limits.
    guard = StorageGuard(timeout_seconds=HANG_GUARD_SECONDS, clock=clock)
    started = asyncio.Event()

    async def hang() -> int:
        started.set()
        await asyncio.sleep(HANG_GUARD_SECONDS)
        return 1

    async def answer() -> int:
        return 7

    for _ in range(FAILURES_BEFORE_PAUSE):
        call = asyncio.create_task(guard.call("test", hang))
        await started.wait()
        started.clear()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    assert await guard.call("test", answer) == 7


def test_the_in_process_lockout_counters_hold_a_bounded_number_of_keys() -> None:
    counters = MemoryCounters(capacity=3)
    one = Window(limit=1, seconds=900)
    for key in ("a", "b", "c", "d"):
        assert counters.attempt([(key, one)], attempt_id=key) == 0

    # "a" was opened first and made room for "d"; the others are still counted.
    assert counters.attempt([("a", one)], attempt_id="a2") == 0
    assert counters.attempt([("c", one)], attempt_id="c2") > 0
