"""Two real replicas behind Debian's nginx, configured with deploy/nginx's snippets.

One PostgreSQL database and one Redis for both replicas, TLS at nginx, and
TRUSTED_PROXIES=127.0.0.1 (nginx, and the test itself when it plays a
balancer in front of nginx). What holds for one process must hold for the
pair: limits and logouts are shared, the client and scheme come through
the proxy, errors stay problem+json, and a replica stopping during load
costs the clients of nginx nothing.

Until the app's keep-alive timeout is a setting (uvicorn's is 5 s), the
upstream keepalive_timeout here is 4 s, so nginx, not a replica, closes an
idle connection; deploy/nginx/nginx.conf uses 60 s against the replicas'
KEEPALIVE_TIMEOUT_SECONDS=75.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from alembic import command

from tests.conftest import PASSWORD, alembic_config
from tests.deploy.databases import fresh_database, postgres_only
from tests.deploy.processes import Process, nginx, serve_replica, until_ready

pytestmark = pytest.mark.lb

SECRET_KEY = "lb-test-secret-key-that-is-long-enough-8c1f0e7d9b"
REGISTER_LIMIT = 4
DRAIN_SECONDS = 2.0
UPSTREAM_KEEPALIVE_TIMEOUT = "4s"
REQUEST_TIMEOUT_SECONDS = 30.0
# Bounds on the load test, so a hang fails instead of stalling the run.
LOAD_CLIENTS = 4
LOAD_BEFORE_SIGTERM_SECONDS = 1.0
LOAD_AFTER_EXIT_SECONDS = 1.5
EXIT_TIMEOUT_SECONDS = 60.0


@dataclass
class Cluster:
    replicas: list[Process]
    balancer: Process
    certificate: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.balancer.port}"

    def client(self, **options: object) -> httpx.AsyncClient:
        """A client of nginx, over TLS, trusting the test's own certificate."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        return httpx.AsyncClient(base_url=self.url, verify=context, timeout=30, **options)  # type: ignore[arg-type]

    def replica_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.replicas[index].port}"

    def access_log(self) -> list[str]:
        return (self.balancer.log.parent / "access.log").read_text().splitlines()

    def app_lines(self, request_id: str) -> list[dict[str, object]]:
        """The replicas' JSON log lines for one request."""
        found = []
        for replica in self.replicas:
            for line in replica.log.read_text(errors="replace").splitlines():
                if request_id in line and line.startswith("{"):
                    found.append(json.loads(line))
        return found


LOG_WAIT_SECONDS = 10.0


async def eventually(check: Callable[[], bool]) -> bool:
    """Log lines are written after the answer is sent: give them a moment."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _replica_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "MAIL_BACKEND": "memory",
        "TRUSTED_PROXIES": "127.0.0.1",
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_REGISTER": f"{REGISTER_LIMIT}/minute",
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "SHUTDOWN_TIMEOUT_SECONDS": "10",
        "REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
        # Above nginx's upstream keepalive_timeout once the setting exists.
        "KEEPALIVE_TIMEOUT_SECONDS": "75",
    }


@pytest.fixture(scope="module")
def lb_redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.fail("the lb tests need Redis: set TEST_REDIS_URL")
    return url


@pytest.fixture(scope="module")
async def lb_database(database_url: str) -> AsyncIterator[str]:
    postgres_only(database_url)
    async with fresh_database(database_url, "lb") as url:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        yield url


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    # Not pytest's temp dir: it is private to root, and nginx's workers are not.
    directory = Path(tempfile.mkdtemp(prefix="groundwork-lb-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def start_cluster(directory: Path, database_url: str, redis_url: str) -> Cluster:
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    env = _replica_env(database_url, redis_url)
    replicas = [serve_replica(directory, env) for _ in range(2)]
    try:
        await asyncio.gather(*(until_ready(replica) for replica in replicas))
        balancer = await asyncio.to_thread(
            nginx,
            directory / "nginx",
            [replica.port for replica in replicas],
            keepalive_timeout=UPSTREAM_KEEPALIVE_TIMEOUT,
        )
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    return Cluster(replicas, balancer, directory / "nginx" / "tls.crt")


def stop_cluster(cluster: Cluster) -> None:
    cluster.balancer.stop()
    for replica in cluster.replicas:
        replica.stop()


@pytest.fixture(scope="module")
async def cluster(lb_database: str, lb_redis_url: str, work_dir: Path) -> AsyncIterator[Cluster]:
    started = await start_cluster(work_dir / "shared", lb_database, lb_redis_url)
    try:
        yield started
    finally:
        stop_cluster(started)


async def sign_up(http: httpx.AsyncClient, *, client_ip: str = "192.0.2.200") -> dict[str, str]:
    """A new user's bearer header; registered from `client_ip`, as a balancer in front says."""
    email = f"lb-{uuid.uuid4().hex[:10]}@example.com"
    forwarded = {"X-Forwarded-For": client_ip}
    registered = await http.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}, headers=forwarded
    )
    assert registered.status_code == 201, registered.text
    token = await http.post(
        "/api/v1/auth/token", data={"username": email, "password": PASSWORD}, headers=forwarded
    )
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def upstreams_of(cluster: Cluster, marker: str) -> set[str]:
    """The replica addresses nginx's access log names for requests whose line holds `marker`."""
    found: set[str] = set()
    for line in cluster.access_log():
        if marker in line:
            upstream = line.split("upstream=", 1)[1].split(" ", 1)[0]
            found.update(part.strip() for part in upstream.split(","))
    return found


# --- shared state -----------------------------------------------------------------


async def test_a_rate_limit_is_global_across_replicas(cluster: Cluster) -> None:
    client_ip = "198.51.100.41"
    statuses = []
    async with cluster.client() as http:
        for _ in range(REGISTER_LIMIT + 1):
            email = f"limited-{uuid.uuid4().hex[:10]}@example.com"
            answer = await http.post(
                "/api/v1/auth/register",
                json={"email": email, "password": PASSWORD},
                headers={"X-Forwarded-For": client_ip},
            )
            statuses.append(answer.status_code)
        other_client = await http.post(
            "/api/v1/auth/register",
            json={"email": f"other-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.42"},
        )

    # Counted per process, each replica would have allowed REGISTER_LIMIT.
    assert statuses == [201] * REGISTER_LIMIT + [429]
    both = {f"127.0.0.1:{replica.port}" for replica in cluster.replicas}
    assert await eventually(lambda: upstreams_of(cluster, "/api/v1/auth/register") == both)
    # The limit is the forwarded client's, not nginx's.
    assert other_client.status_code == 201, other_client.text


async def test_a_logout_on_one_replica_rejects_the_token_on_the_other_at_once(
    cluster: Cluster,
) -> None:
    email = f"logout-{uuid.uuid4().hex[:10]}@example.com"
    first, second = cluster.replica_url(0), cluster.replica_url(1)
    async with httpx.AsyncClient(timeout=30) as http:
        registered = await http.post(
            f"{first}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        pair = (
            await http.post(
                f"{first}/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
        ).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        before = await http.get(f"{second}/api/v1/users/me", headers=bearer)

        logout = await http.post(
            f"{first}/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}
        )
        after = await http.get(f"{second}/api/v1/users/me", headers=bearer)
        refreshed = await http.post(
            f"{second}/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )

    assert before.status_code == 200, before.text
    assert logout.status_code == 204, logout.text
    assert after.status_code == 401, after.text
    assert refreshed.status_code == 401, refreshed.text


# --- what comes through the proxy -------------------------------------------------


async def test_a_forwarded_for_chain_names_the_client_in_the_logs(cluster: Cluster) -> None:
    request_id = f"lb-chain-{uuid.uuid4().hex}"
    async with cluster.client() as http:
        answer = await http.get(
            "/health/live",
            # The leftmost entry is what the client itself claimed; the balancer
            # in front of nginx appended the address it saw.
            headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.77", "X-Request-ID": request_id},
        )

    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == request_id

    def access_lines() -> list[dict[str, object]]:
        return [line for line in cluster.app_lines(request_id) if line["event"] == "http.request"]

    assert await eventually(lambda: bool(access_lines())), "no access line for the request"
    assert [line["client_ip"] for line in access_lines()] == ["203.0.113.77"]


async def test_redirects_stay_on_https(cluster: Cluster) -> None:
    async with cluster.client() as http:
        # What a client claims about the scheme is replaced by nginx's own.
        answer = await http.get("/api/v1/items/", headers={"X-Forwarded-Proto": "http"})

    assert answer.status_code == 307
    assert answer.headers["location"] == f"{cluster.url}/api/v1/items"


async def test_request_ids_from_nginx_reach_the_app(cluster: Cluster) -> None:
    async with cluster.client() as http:
        answer = await http.get("/health/live")

    request_id = answer.headers["x-request-id"]
    assert await eventually(lambda: f"request_id={request_id}" in "\n".join(cluster.access_log()))
    assert await eventually(lambda: bool(cluster.app_lines(request_id)))


# --- errors stay problem+json ----------------------------------------------------


async def test_a_body_over_the_apps_limit_gets_the_apps_problem(cluster: Cluster) -> None:
    request_id = f"lb-body-{uuid.uuid4().hex}"
    async with cluster.client() as http:
        headers = await sign_up(http)
        answer = await http.post(
            "/api/v1/items",
            content=b"x" * (1024 * 1024 + 512 * 1024),
            headers={**headers, "Content-Type": "application/json", "X-Request-ID": request_id},
        )

    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:groundwork:problem:payload-too-large"
    assert await eventually(lambda: bool(cluster.app_lines(request_id))), "nginx answered it"


async def test_a_body_nginx_refuses_is_problem_json(cluster: Cluster) -> None:
    request_id = f"lb-huge-{uuid.uuid4().hex}"
    async with cluster.client() as http:
        answer = await http.post(
            "/api/v1/items",
            content=b"x" * (3 * 1024 * 1024),
            headers={"Content-Type": "application/json", "X-Request-ID": request_id},
        )

    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:groundwork:problem:payload-too-large"
    assert problem["status"] == 413
    assert problem["instance"] == "/api/v1/items"
    assert problem["request_id"] == request_id == answer.headers["x-request-id"]


async def test_no_replica_answering_is_a_problem_json_503(work_dir: Path) -> None:
    from tests.conftest import free_port

    balancer = await asyncio.to_thread(
        nginx, work_dir / "nobody-home", [free_port()], keepalive_timeout="4s"
    )
    try:
        context = ssl.create_default_context(cafile=str(work_dir / "nobody-home" / "tls.crt"))
        async with httpx.AsyncClient(verify=context, timeout=30) as http:
            answer = await http.get(f"https://127.0.0.1:{balancer.port}/api/v1/items")
    finally:
        balancer.stop()

    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["type"] == "urn:groundwork:problem:service-unavailable"


# --- a replica stops during load -------------------------------------------------


@dataclass
class Load:
    answers: int = 0
    failures: list[str] = field(default_factory=list)
    started_after_exit: int = 0
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    exited_at: float | None = None


async def _client_loop(cluster: Cluster, headers: dict[str, str], load: Load) -> None:
    # Only idempotent requests: nginx passes those to the other replica when
    # the first refuses or drops the connection; a POST it would not.
    paths = ("/api/v1/items", "/api/v1/users/me", "/health/live")
    async with cluster.client() as http:
        index = 0
        while not load.stopped.is_set():
            path = paths[index % len(paths)]
            index += 1
            if load.exited_at is not None:
                load.started_after_exit += 1
            try:
                answer = await http.get(path, headers=headers)
            except httpx.HTTPError as exc:
                load.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                continue
            if answer.status_code != 200:
                load.failures.append(f"{path}: {answer.status_code} {answer.text[:200]}")
            else:
                load.answers += 1


async def test_sigterm_to_one_replica_during_load_fails_no_request(
    lb_database: str, lb_redis_url: str, work_dir: Path
) -> None:
    cluster = await start_cluster(work_dir / "drain", lb_database, lb_redis_url)
    try:
        async with cluster.client() as http:
            headers = await sign_up(http)
        load = Load()
        clients = [
            asyncio.create_task(_client_loop(cluster, headers, load)) for _ in range(LOAD_CLIENTS)
        ]
        try:
            await asyncio.sleep(LOAD_BEFORE_SIGTERM_SECONDS)
            stopping = cluster.replicas[0]
            answered_before = load.answers
            stopping.process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(stopping.process.wait, EXIT_TIMEOUT_SECONDS)
            load.exited_at = time.monotonic()
            await asyncio.sleep(LOAD_AFTER_EXIT_SECONDS)
        finally:
            load.stopped.set()
            await asyncio.gather(*clients)
    finally:
        stop_cluster(cluster)

    assert load.failures == [], "\n".join(load.failures[:20])
    assert exit_code == 0, stopping.output()
    assert answered_before > 0
    # The load went on past the replica's exit, onto the one that stayed.
    assert load.started_after_exit > 0
    stopping_address = f"127.0.0.1:{stopping.port}"
    served_by = upstreams_of(cluster, "/api/v1/items")
    assert stopping_address in served_by
