"""Real processes to break: each fault test owns what it stops, starts and kills.

Nothing here touches the machine's shared PostgreSQL or Redis; every server
is private, on its own loopback port and data directory, and removed after
the test even when it fails.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from alembic import command
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import alembic_config, free_port

# --- a private PostgreSQL ----------------------------------------------------------

POSTGRES_USER = "postgres"
POSTGRES_DATABASE = "groundwork"
PG_COMMAND_TIMEOUT_SECONDS = 60


def _postgres_bin() -> Path:
    """The newest server installed the Debian way (/usr/lib/postgresql/<version>/bin)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    newest = max(found, key=lambda path: int(Path(path).parent.parent.name.split(".")[0]))
    return Path(newest).parent


class PrivatePostgres:
    """A PostgreSQL server of the test's own, stopped and started at will.

    initdb and postgres refuse to run as root, so as root every command runs
    as the `postgres` user, which owns the data directory.
    """

    def __init__(self, root: Path) -> None:
        self.bin = _postgres_bin()
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://{POSTGRES_USER}@127.0.0.1:{self.port}/{POSTGRES_DATABASE}"

    def _run(self, *args: str) -> None:
        argv = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", POSTGRES_USER, "--", *argv]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=PG_COMMAND_TIMEOUT_SECONDS, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            POSTGRES_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        # fsync off: a test server need not survive the machine crashing,
        # only its own stops, and the shared disk stays quiet.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=40"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session; `immediate` is a crash, recovered at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def psql(self, *statements: str, database: str = "postgres") -> None:
        args: Sequence[str] = [f"--command={statement}" for statement in statements]
        self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            POSTGRES_USER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            *args,
        )

    def close_database(self) -> None:
        """Refuse new connections to the app's database and end the ones it has."""
        self.psql(
            "ALTER DATABASE groundwork ALLOW_CONNECTIONS false",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'groundwork'",
        )

    def end_sessions(self) -> None:
        """End every session of the app's database, as an operator or a failover would."""
        self.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'groundwork'"
        )

    def open_database(self) -> None:
        self.psql("ALTER DATABASE groundwork ALLOW_CONNECTIONS true")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A fresh PostgreSQL with the app's schema, on a free loopback port.

    The directory lives under the system temp dir (pytest's own is private
    to root) and belongs to `postgres`.
    """
    root = Path(tempfile.mkdtemp(prefix="groundwork-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, user=POSTGRES_USER, group=POSTGRES_USER)
        server = PrivatePostgres(root)
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        try:
            await asyncio.to_thread(server.psql, f"CREATE DATABASE {POSTGRES_DATABASE}")
            await asyncio.to_thread(command.upgrade, alembic_config(server.url), "head")
            yield server
        finally:
            if server.is_running():
                await asyncio.to_thread(server.stop, "immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- a private Redis ---------------------------------------------------------------

REDIS_START_SECONDS = 10.0


class PrivateRedis:
    """A `redis-server` of the test's own: loopback only, nothing persisted, killed at will.

    With `tls`, it speaks TLS only, with a certificate made for the test, and
    `url` is a `rediss://` URL that trusts that certificate.
    """

    def __init__(self, directory: Path, *, tls: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        self._listen = ["--port", str(self.port)]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        if tls:
            certificate = _self_signed_certificate(directory)
            self._listen = [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(certificate.cert),
                "--tls-key-file", str(certificate.key),
                "--tls-ca-cert-file", str(certificate.cert),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
            self.url = f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={certificate.cert}"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed")
        self._process = await asyncio.create_subprocess_exec(
            server,
            *self._listen,
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


@pytest.fixture
async def private_tls_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A running private Redis that speaks only TLS."""
    redis = PrivateRedis(tmp_path, tls=True)
    try:
        await redis.start()
        yield redis
    finally:
        await redis.kill()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def _self_signed_certificate(directory: Path) -> Certificate:
    """A certificate for 127.0.0.1, good for a day, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(directory / "redis.crt", directory / "redis.key")
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
