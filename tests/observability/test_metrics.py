"""Prometheus metrics: RED by route template, domain counters, pool gauges, /metrics access."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from ipaddress import ip_network

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from tests.conftest import PASSWORD, AccountFactory, client_for
from tests.observability.conftest import scrape, value

ITEM_ROUTE = "/api/v1/items/{item_id}"


async def test_requests_are_counted_under_their_route_template(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    before = await scrape(client)

    probe = uuid.uuid4()
    for _ in range(3):
        await client.get(f"/api/v1/items/{probe}", headers=account.headers)

    after = await scrape(client)
    labels = {"method": "GET", "route": ITEM_ROUTE}
    assert (
        value(after, "http_requests_total", status="404", **labels)
        - value(before, "http_requests_total", status="404", **labels)
        == 3
    )
    assert (
        value(after, "http_request_duration_seconds_count", **labels)
        - value(before, "http_request_duration_seconds_count", **labels)
        == 3
    )
    assert str(probe) not in (await client.get("/metrics")).text


async def test_many_unknown_paths_make_one_series(client: httpx.AsyncClient) -> None:
    before = await scrape(client)

    for _ in range(40):
        await client.get(f"/probe/{uuid.uuid4().hex}")

    after = await scrape(client)
    new_series = {key for key in after if key not in before and key[0].startswith("http_")}
    routes = {dict(labels).get("route") for _, labels in new_series}
    assert routes <= {"unmatched"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert (
        value(after, "http_requests_total", **unmatched)
        - value(before, "http_requests_total", **unmatched)
        == 40
    )
    assert "/probe/" not in (await client.get("/metrics")).text


async def test_invented_methods_share_one_label(client: httpx.AsyncClient) -> None:
    before = await scrape(client)

    await client.request("BREW", "/health/live")

    after = await scrape(client)
    labels = {"method": "OTHER", "route": "/health/live", "status": "405"}
    assert (
        value(after, "http_requests_total", **labels)
        - value(before, "http_requests_total", **labels)
        == 1
    )


async def test_scrapes_are_not_counted_and_nothing_stays_in_progress(
    client: httpx.AsyncClient,
) -> None:
    first = await scrape(client)
    await client.get("/health/live")
    second = await scrape(client)

    assert not any(dict(labels).get("route") == "/metrics" for _, labels in second)
    assert value(second, "http_requests_in_progress") == value(first, "http_requests_in_progress")


async def test_logins_are_counted_by_outcome(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    before = await scrape(client)

    await client.post("/api/v1/auth/token", data={"username": account.email, "password": PASSWORD})
    await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": "nope-nope-1"}
    )
    await client.post(
        "/api/v1/auth/token", data={"username": "ghost@example.com", "password": "x" * 12}
    )

    after = await scrape(client)
    for outcome in ("success", "bad_password", "unknown_email"):
        assert (
            value(after, "auth_logins_total", outcome=outcome)
            - value(before, "auth_logins_total", outcome=outcome)
            == 1
        ), outcome
    # Outcomes never seen are still present, at zero, so ratios are defined.
    assert ("auth_logins_total", frozenset({("outcome", "locked_out")})) in after


async def test_refresh_reuse_is_counted(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    pair = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": PASSWORD}
    )
    spent = pair.json()["refresh_token"]
    await client.post("/api/v1/auth/refresh", json={"refresh_token": spent})
    before = await scrape(client)

    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": spent})

    assert reused.status_code == 401
    after = await scrape(client)
    assert (
        value(after, "auth_refresh_reuse_detected_total")
        - value(before, "auth_refresh_reuse_detected_total")
        == 1
    )


async def test_password_hashing_reports_its_time_and_queue_wait(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    before = await scrape(client)

    await client.post("/api/v1/auth/token", data={"username": account.email, "password": PASSWORD})

    after = await scrape(client)
    verify = {"operation": "verify"}
    assert (
        value(after, "password_hash_duration_seconds_count", **verify)
        - value(before, "password_hash_duration_seconds_count", **verify)
        == 1
    )
    assert (
        value(after, "password_hash_queue_wait_seconds_count")
        - value(before, "password_hash_queue_wait_seconds_count")
        == 1
    )


async def test_pool_gauges_follow_connections_lent_and_returned(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    idle = await scrape(client)
    assert value(idle, "db_pool_capacity") >= settings.db_pool_size + settings.db_max_overflow

    async with resources.engine.connect(), resources.engine.connect():
        busy = await scrape(client)
    done = await scrape(client)

    assert value(busy, "db_pool_checked_out") - value(idle, "db_pool_checked_out") == 2
    assert value(done, "db_pool_checked_out") == value(idle, "db_pool_checked_out")


async def test_connections_beyond_the_pool_size_count_as_overflow(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory(db_pool_size=1, db_max_overflow=2)
    async with LifespanManager(app), client_for(app) as client:
        engine = app.state.resources.engine
        idle = await scrape(client)
        async with engine.connect(), engine.connect(), engine.connect():
            busy = await scrape(client)

    assert value(busy, "db_pool_overflow") - value(idle, "db_pool_overflow") == 2


async def test_many_apps_in_one_process_do_not_clash(settings: Settings) -> None:
    for _ in range(3):
        app = create_app(settings)
        async with LifespanManager(app), client_for(app) as client:
            assert (await client.get("/metrics")).status_code == 200


@pytest.mark.parametrize("env", ["test", "production"])
async def test_a_configured_token_guards_the_metrics(
    app_factory: Callable[..., FastAPI], env: str
) -> None:
    app = app_factory(app_env=env, metrics_token=SecretStr("scrape-token-123"))
    async with LifespanManager(app), client_for(app) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})

    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "http_requests_total" in right.text


@pytest.mark.parametrize(
    ("networks", "status"),
    [([], 403), (["10.0.0.0/8"], 403), (["127.0.0.0/8"], 200), (["::/96"], 403)],
)
async def test_production_serves_metrics_to_allowed_networks_only(
    app_factory: Callable[..., FastAPI], networks: list[str], status: int
) -> None:
    app = app_factory(
        app_env="production", metrics_allowed_networks=[ip_network(n) for n in networks]
    )
    async with LifespanManager(app), client_for(app) as client:
        response = await client.get("/metrics")

    assert response.status_code == status


def test_allowed_networks_are_read_as_a_comma_separated_list(settings: Settings) -> None:
    parsed = Settings.model_validate(
        {**settings.model_dump(), "metrics_allowed_networks": "10.0.0.0/8, 192.168.1.0/24"}
    )

    assert [str(n) for n in parsed.metrics_allowed_networks] == ["10.0.0.0/8", "192.168.1.0/24"]


async def test_openmetrics_is_served_when_asked_for(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_metrics_are_never_rate_limited(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory(rate_limit_default="1/minute")
    async with LifespanManager(app), client_for(app) as client:
        answers = [(await client.get("/metrics")).status_code for _ in range(5)]

    assert answers == [200] * 5
