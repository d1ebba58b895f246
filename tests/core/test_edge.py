"""The edge refuses what a prototype accepts: oversized and stalled bodies, slow handlers,
foreign hosts and origins; and every answer carries the browser hardening headers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from pydantic import SecretStr, ValidationError

from app.core.errors import problem_type
from app.core.middleware.body_limit import max_body_bytes
from app.main import create_app
from tests.conftest import client_for, make_settings

# Only guards against a hang failing the run forever; not a timing assertion.
HANG_GUARD_SECONDS = 60
REGISTER = "/api/v1/auth/register"
KIB = 1024
JSON = {"Content-Type": "application/json"}

AppFactory = Callable[..., FastAPI]


@pytest.fixture
def build(database_url: str) -> AppFactory:
    def factory(**overrides: Any) -> FastAPI:
        return create_app(make_settings(database_url, **overrides))

    return factory


class Upload:
    """A request body that counts how much of it the server pulled."""

    def __init__(self, chunk_size: int, chunks: int, *, stall_after: int | None = None) -> None:
        self.chunk = b"x" * chunk_size
        self.chunks = chunks
        self.stall_after = stall_after
        self.pulled = 0
        self.never = asyncio.Event()

    async def stream(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            if self.stall_after is not None and self.pulled >= self.stall_after:
                await self.never.wait()
            self.pulled += 1
            yield self.chunk


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == problem_type(slug)
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


# --- request bodies ----------------------------------------------------------------


async def test_a_declared_length_over_the_limit_is_refused_without_reading_a_byte(
    build: AppFactory,
) -> None:
    application = build(max_body_bytes=64 * KIB)
    upload = Upload(16 * KIB, 8)
    async with LifespanManager(application), client_for(application) as http:
        response = await http.post(
            REGISTER,
            content=upload.stream(),
            headers={**JSON, "Content-Length": str(upload.chunks * len(upload.chunk))},
        )

    assert_problem(response, 413, "payload-too-large")
    assert upload.pulled == 0


async def test_an_undeclared_body_is_cut_as_soon_as_it_passes_the_limit(
    build: AppFactory,
) -> None:
    application = build(max_body_bytes=64 * KIB)
    upload = Upload(16 * KIB, 256)  # 4 MiB on offer, sent chunked
    async with LifespanManager(application), client_for(application) as http:
        response = await http.post(REGISTER, content=upload.stream(), headers=JSON)

    assert_problem(response, 413, "payload-too-large")
    assert "Content-Length" not in response.request.headers
    assert upload.pulled <= 5  # 64 KiB in 16 KiB chunks, plus the one that went over


async def test_the_default_limit_is_one_mebibyte(build: AppFactory) -> None:
    application = build()
    async with LifespanManager(application), client_for(application) as http:
        at_limit = await http.post(REGISTER, content=b" " * (1024 * KIB), headers=JSON)
        over = await http.post(REGISTER, content=b" " * (1024 * KIB + 1), headers=JSON)

    assert at_limit.status_code == 422  # read whole, then found empty
    assert_problem(over, 413, "payload-too-large")


async def test_a_route_can_raise_or_lower_its_own_body_limit(build: AppFactory) -> None:
    application = build(max_body_bytes=1 * KIB)

    @application.post("/edge-check/upload")
    @max_body_bytes(8 * KIB)
    async def upload(request: Request) -> int:
        return len(await request.body())

    @application.post("/edge-check/tiny")
    @max_body_bytes(100)
    async def tiny(request: Request) -> int:
        return len(await request.body())

    async with LifespanManager(application), client_for(application) as http:
        big = await http.post("/edge-check/upload", content=b"x" * (6 * KIB))
        too_big = await http.post("/edge-check/upload", content=b"x" * (9 * KIB))
        elsewhere = await http.post(REGISTER, content=b" " * (6 * KIB), headers=JSON)
        small = await http.post("/edge-check/tiny", content=b"x" * 500)

    assert (big.status_code, big.json()) == (200, 6 * KIB)
    assert_problem(too_big, 413, "payload-too-large")
    assert_problem(elsewhere, 413, "payload-too-large")
    assert_problem(small, 413, "payload-too-large")


async def test_a_stalled_body_is_answered_408_without_waiting_for_the_rest(
    build: AppFactory,
) -> None:
    application = build(request_timeout_seconds=0.3)
    upload = Upload(1 * KIB, 100, stall_after=1)
    async with (
        LifespanManager(application),
        client_for(application) as http,
        asyncio.timeout(HANG_GUARD_SECONDS),
    ):
        response = await http.post(REGISTER, content=upload.stream(), headers=JSON)

    assert_problem(response, 408, "request-timeout")
    assert response.headers["Connection"] == "close"
    assert upload.pulled == 1


async def test_a_handler_slower_than_the_request_timeout_gets_a_504(build: AppFactory) -> None:
    application = build(request_timeout_seconds=0.2)
    never = asyncio.Event()

    @application.get("/edge-check/slow")
    async def slow() -> str:
        await never.wait()
        return "unreachable"

    async with (
        LifespanManager(application),
        client_for(application) as http,
        asyncio.timeout(HANG_GUARD_SECONDS),
    ):
        response = await http.get("/edge-check/slow")
        after = await http.get("/health/live")

    assert_problem(response, 504, "gateway-timeout")
    assert after.status_code == 200


# --- security headers ---------------------------------------------------------------


HARDENING = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@pytest.mark.parametrize("path", ["/health/live", "/api/v1/items", "/no/such/path"])
async def test_every_answer_carries_the_hardening_headers(build: AppFactory, path: str) -> None:
    application = build()
    async with LifespanManager(application), client_for(application) as http:
        response = await http.get(path)

    for name, value in HARDENING.items():
        assert response.headers[name] == value
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "Strict-Transport-Security" not in response.headers
    assert "server" not in response.headers


async def test_production_adds_strict_transport_security(database_url: str) -> None:
    # Never started: only the middleware is exercised, so no database is needed.
    application = create_app(
        make_settings(
            "postgresql+asyncpg://u@127.0.0.1:1/unused",
            app_env="production",
            secret_key=SecretStr("Ue7GfXq2LwV9tR4bN1mK8sZ3cY6hJ0pD5aW"),
        )
    )

    async with client_for(application) as http:
        response = await http.get("/health/live")

    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_swagger_ui_gets_a_policy_that_lets_it_load_and_nothing_else(
    build: AppFactory,
) -> None:
    application = build()
    async with LifespanManager(application), client_for(application) as http:
        page = await http.get("/docs")
        redirect = await http.get("/docs/oauth2-redirect")

    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert inline
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "script-src 'self' 'sha256-" in policy
    assert "https:" not in policy
    assert "'unsafe-inline'" not in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "https://" not in page.text
    assert "/api/v1/auth/token" in str(application.openapi()["components"]["securitySchemes"])
    assert redirect.status_code == 200
    assert "'sha256-" in redirect.headers["Content-Security-Policy"]


async def test_docs_and_schema_can_be_switched_off(build: AppFactory) -> None:
    application = build(docs_enabled=False)
    async with LifespanManager(application), client_for(application) as http:
        answers = [await http.get(path) for path in ("/docs", "/openapi.json", "/redoc")]

    assert [answer.status_code for answer in answers] == [404, 404, 404]


# --- CORS ------------------------------------------------------------------------

APP_ORIGIN = "https://app.example"


def preflight(origin: str, method: str = "POST", headers: str = "authorization") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_is_granted(build: AppFactory) -> None:
    application = build(cors_origins=APP_ORIGIN)
    async with LifespanManager(application), client_for(application) as http:
        response = await http.options(
            "/api/v1/items", headers=preflight(APP_ORIGIN, headers="authorization, idempotency-key")
        )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    ("origin", "method"), [("https://evil.example", "POST"), (APP_ORIGIN, "PUT")]
)
async def test_a_refused_preflight_is_a_problem(
    build: AppFactory, origin: str, method: str
) -> None:
    application = build(cors_origins=APP_ORIGIN)
    async with LifespanManager(application), client_for(application) as http:
        response = await http.options("/api/v1/items", headers=preflight(origin, method))

    assert_problem(response, 400, "bad-request")


async def test_cross_origin_answers_expose_the_rate_limit_headers_even_on_429(
    build: AppFactory,
) -> None:
    application = build(cors_origins=APP_ORIGIN, rate_limit_default="1/hour")
    async with LifespanManager(application), client_for(application) as http:
        first = await http.get("/api/v1/items", headers={"Origin": APP_ORIGIN})
        refused = await http.get("/api/v1/items", headers={"Origin": APP_ORIGIN})
        foreign = await http.get("/api/v1/items", headers={"Origin": "https://evil.example"})

    assert first.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    exposed = first.headers["Access-Control-Expose-Headers"]
    for name in ("X-RateLimit-Remaining", "Retry-After", "X-Request-ID"):
        assert name in exposed
    assert refused.status_code == 429
    assert refused.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_a_wildcard_origin_is_refused_in_production(database_url: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        make_settings(
            "postgresql+asyncpg://u@127.0.0.1/db",
            app_env="production",
            secret_key=SecretStr("Ue7GfXq2LwV9tR4bN1mK8sZ3cY6hJ0pD5aW"),
            cors_origins="*",
        )


def test_a_wildcard_origin_with_credentials_is_refused_everywhere(database_url: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        make_settings(database_url, cors_origins="*", cors_allow_credentials=True)


def test_cors_origins_are_read_comma_separated(database_url: str) -> None:
    settings = make_settings(database_url, cors_origins="https://a.example, https://b.example")

    assert settings.cors_origins == ["https://a.example", "https://b.example"]


# --- hosts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("api.example.com", True),
        ("API.example.com:8443", True),
        ("eu.example.org", True),
        ("example.org", False),
        ("evil.example", False),
        ("api.example.com.evil.example", False),
    ],
)
async def test_only_listed_hosts_are_served(build: AppFactory, host: str, served: bool) -> None:
    application = build(trusted_hosts="api.example.com, *.example.org")
    async with LifespanManager(application), client_for(application) as http:
        response = await http.get("/api/v1/items", headers={"Host": host})

    if served:
        assert response.status_code == 401
    else:
        assert_problem(response, 400, "bad-request")
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_probes_may_address_a_replica_by_ip(build: AppFactory) -> None:
    application = build(trusted_hosts="api.example.com")
    async with LifespanManager(application), client_for(application) as http:
        live = await http.get("/health/live", headers={"Host": "10.1.2.3:8000"})
        ready = await http.get("/health/ready", headers={"Host": "10.1.2.3:8000"})

    assert (live.status_code, ready.status_code) == (200, 200)


async def test_any_host_is_served_by_default(build: AppFactory) -> None:
    application = build()
    async with LifespanManager(application), client_for(application) as http:
        response = await http.get("/health/live", headers={"Host": "whatever.example"})

    assert response.status_code == 200


# --- the schema -------------------------------------------------------------------


def test_openapi_documents_the_edge_answers_of_every_operation(build: AppFactory) -> None:
    schema = build().openapi()

    for path, path_item in schema["paths"].items():
        for method, operation in path_item.items():
            responses = operation["responses"]
            assert {"400", "504"} <= responses.keys(), (method, path)
            if "requestBody" in operation:
                assert {"408", "413"} <= responses.keys(), (method, path)
            for status, response in responses.items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"]
