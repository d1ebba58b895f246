"""Private server processes for deployment tests: PgBouncer, nginx, app replicas.

Each listens on a free loopback port, keeps its files in the test's own
directory, and is stopped after the test even when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import free_port

START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def output(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    name: str, argv: list[str], directory: Path, port: int, env: Mapping[str, str] | None = None
) -> Process:
    log = directory / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Process(name, process, log, port)


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.fail(f"{name} is not installed (apt-get install {name})")
    return found


def wait_for_port(server: Process, timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
            return
        if server.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{server.name} did not start:\n{server.output()}")
        time.sleep(0.1)


# --- PgBouncer ---------------------------------------------------------------------


@contextlib.contextmanager
def pgbouncer(database_url: str, directory: Path, *, pool_size: int = 2) -> Iterator[str]:
    """PgBouncer in transaction pooling in front of `database_url`; yields its URL.

    Few server connections, so concurrent app transactions share them.
    PgBouncer refuses to run as root; as root it drops to `postgres`.
    """
    url = make_url(database_url)
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    user = url.username or "postgres"
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={url.host or '127.0.0.1'} port={url.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
    )
    argv = [binary("pgbouncer")]
    if os.geteuid() == 0:
        shutil.chown(directory, user="postgres")
        for path in directory.iterdir():
            shutil.chown(path, user="postgres")
        argv += ["-u", "postgres"]
    server = start("pgbouncer", [*argv, str(directory / "pgbouncer.ini")], directory, port)
    try:
        wait_for_port(server)
        yield url.set(port=port, host="127.0.0.1").render_as_string(hide_password=False)
    finally:
        server.stop()


# --- app replicas ------------------------------------------------------------------


def serve_replica(directory: Path, env: Mapping[str, str]) -> Process:
    """`python -m app serve` on a free port, configured through the environment alone."""
    port = free_port()
    full_env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": str(port)}
    full_env.update(env)
    # Started outside the checkout, so no `.env` is read.
    argv = [sys.executable, "-m", "app", "serve"]
    return start(f"replica-{port}", argv, directory, port, full_env)


async def until_ready(replica: Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{replica.port}", timeout=5) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/health/ready")).status_code == 200:
                    return
            if replica.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the replica did not start:\n{replica.output()}")
            await asyncio.sleep(0.2)


# --- nginx -------------------------------------------------------------------------

NGINX_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nginx"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day: the test's own TLS."""
    certificate, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(certificate), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return certificate, key


def nginx(directory: Path, replica_ports: list[int], *, keepalive_timeout: str) -> Process:
    """Debian's nginx as a private process: deploy/nginx's snippets, TLS on a free port.

    The upstream block is the test's own (loopback replicas); everything
    else nginx does to a request comes from the snippets an operator uses.
    """
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    # nginx started as root serves from `nobody`, which must reach its temp dirs.
    directory.chmod(0o755)
    certificate, key = self_signed_certificate(directory)
    servers = "".join(
        f"        server 127.0.0.1:{replica} max_fails=1 fail_timeout=5s;\n"
        for replica in replica_ports
    )
    (directory / "nginx.conf").write_text(
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "worker_processes 1;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    include {NGINX_DIR / 'groundwork-http.conf'};\n"
        f"    access_log {directory / 'access.log'} groundwork;\n"
        f"    client_body_temp_path {directory / 'client_body'};\n"
        f"    proxy_temp_path {directory / 'proxy'};\n"
        f"    fastcgi_temp_path {directory / 'fastcgi'};\n"
        f"    uwsgi_temp_path {directory / 'uwsgi'};\n"
        f"    scgi_temp_path {directory / 'scgi'};\n"
        "    upstream groundwork {\n"
        f"{servers}"
        "        keepalive 16;\n"
        f"        keepalive_timeout {keepalive_timeout};\n"
        "    }\n"
        "    server {\n"
        f"        listen 127.0.0.1:{port} ssl;\n"
        f"        ssl_certificate {certificate};\n"
        f"        ssl_certificate_key {key};\n"
        f"        include {NGINX_DIR / 'groundwork-server.conf'};\n"
        "    }\n"
        "}\n"
    )
    argv = [
        binary("nginx"),
        "-p", str(directory),
        "-c", str(directory / "nginx.conf"),
        "-e", str(directory / "error.log"),
        "-g", "daemon off;",
    ]  # fmt: skip
    server = start("nginx", argv, directory, port)
    wait_for_port(server)
    return server
