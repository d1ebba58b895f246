"""Operator commands: `python -m app <command>` (or the `groundwork` script)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from app.core.config import Settings
from app.core.errors import DomainError
from app.core.logging import configure_logging

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
APP_DIR = Path(__file__).resolve().parent


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SystemExit(f"error: invalid configuration: {problems}") from None


def migrate(settings: Settings, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    # Our logging is configured already; alembic.ini's would replace it.
    config.attributes["configure_logging"] = False
    command.upgrade(config, revision)


def serve(settings: Settings) -> None:
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from app.core.workers import (
        DrainingServer,
        Supervisor,
        drain_seconds,
        prepare_multiprocess_dir,
    )

    config = uvicorn.Config(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # The client address is worked out by the app from TRUSTED_PROXIES;
        # uvicorn's own X-Forwarded-For handling would trust loopback.
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        # After the drain: how long requests in flight may still take. Typed
        # as whole seconds, but waited on with asyncio.wait_for, which takes any.
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,  # type: ignore[arg-type]
    )
    drain = drain_seconds(settings)
    multiproc_dir = settings.prometheus_multiproc_dir
    if multiproc_dir is not None:
        # Before any worker exists: a worker's metrics land here from its start.
        prepare_multiprocess_dir(multiproc_dir)
    with contextlib.suppress(KeyboardInterrupt):
        if settings.workers > 1:
            # The workers load the app, each in a process of its own.
            gc.enable()
            supervisor = Supervisor(
                config, [config.bind_socket()], drain_seconds=drain, multiproc_dir=multiproc_dir
            )
            supervisor.run()
            return
        server = DrainingServer(config, drain_seconds=drain)
        # Bound by uvicorn as for several workers: for HOST `::` one socket
        # taking IPv6 and IPv4 alike; asyncio binding by itself would make
        # it IPv6 only.
        server.run(sockets=[config.bind_socket()])
        if not server.started:
            raise SystemExit(STARTUP_FAILURE)


async def _with_users(settings: Settings, action: str, *args: str) -> str:
    """Run one account command through the same service the API uses."""
    from app.main import open_resources
    from app.users.service import OperatorService

    async with open_resources(settings) as resources, resources.sessionmaker() as session:
        users = OperatorService(session, resources)
        if action == "create-admin":
            email, password = args
            created = await users.ensure_admin(email, password)
            return "created" if created else "an account with that email already exists"
        if action == "set-password":
            email, password = args
            await users.set_password(email, password)
            return "password set; every session of the account has ended"
        page = await users.list_page(limit=100)
        lines = [
            f"{user.id}  {user.email}  {'active' if user.is_active else 'inactive'}  "
            f"{','.join(user.roles)}"
            for user in page.items
        ]
        if page.next_cursor:
            lines.append("… (first 100 shown)")
        return "\n".join(lines) or "no users"


def work(settings: Settings) -> None:
    """`worker`: run background jobs until SIGTERM or SIGINT, then drain."""
    from app.core.workers import prepare_multiprocess_dir

    if settings.prometheus_multiproc_dir is not None:
        # Before prometheus_client is imported, which reads the variable then;
        # cleared, since a restarted container keeps its volume and last run's
        # counts must not add up again.
        prepare_multiprocess_dir(settings.prometheus_multiproc_dir)
    asyncio.run(_work(settings))


async def _work(settings: Settings) -> None:
    from app.core.tracing import Tracing
    from app.jobs.worker import Worker
    from app.main import open_resources

    tracing = Tracing(settings)
    async with open_resources(settings) as resources:
        with tracing.exporting(), tracing.traced_redis(resources.redis):
            await Worker(resources, tracer=tracing.tracer("app.jobs")).serve()


async def _dead_jobs(settings: Settings, command: str, ids: Sequence[str], every: bool) -> str:
    import uuid

    from app.jobs.operator import list_dead, retry_dead
    from app.main import open_resources

    async with open_resources(settings) as resources:
        if command == "jobs-dead":
            return "\n".join(await list_dead(resources.sessionmaker)) or "no dead jobs"
        if not ids and not every:
            raise ValueError("name the jobs to retry, or --all")
        chosen = None if every else [uuid.UUID(job_id) for job_id in ids]
        count = await retry_dead(resources.sessionmaker, chosen)
        return f"{count} dead job(s) pending again"


# Commands that print a fresh random key. They read no settings, which may not
# be configured yet.
KEY_COMMANDS = {
    "new-secret-key": "print a new random key for SECRET_KEY",
    "new-encryption-key": "print a new Fernet key for DATA_ENCRYPTION_KEYS",
}


def _new_key(command: str) -> str:
    from app.core.security.keyring import new_data_key
    from app.core.security.tokens import new_signing_key

    return new_signing_key() if command == "new-secret-key" else new_data_key()


async def _reencrypt(settings: Settings) -> str:
    """Every encrypted column under the newest DATA_ENCRYPTION_KEYS key."""
    from app.core.security.keyring import ENCRYPTED_COLUMNS, reencrypt_columns
    from app.main import open_resources

    async with open_resources(settings) as resources:
        changed = await reencrypt_columns(
            resources.sessionmaker, resources.keyring, ENCRYPTED_COLUMNS
        )
    lines = [f"{name}: {count} re-encrypted" for name, count in changed.items()]
    return "\n".join(lines) or "no encrypted columns; nothing to re-encrypt"


async def _purge(settings: Settings) -> str:
    """One retention run now, as the scheduled one does it."""
    from app.db.types import utcnow
    from app.main import open_resources
    from app.retention import run_retention

    async with open_resources(settings) as resources:
        deleted = await run_retention(resources.sessionmaker, settings, now=utcnow())
    width = max(map(len, deleted), default=0)
    lines = [f"{kind:<{width}}  {count} deleted" for kind, count in deleted.items()]
    if settings.audit_retention_days == 0:
        lines.append("(audit events are kept forever: AUDIT_RETENTION_DAYS is 0)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundwork", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the API on HOST:PORT")
    serve_parser.add_argument(
        "--reload",
        action="store_true",
        help="one process, restarted when a file under app/ changes (development only)",
    )
    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.add_argument("revision", nargs="?", default="head")
    for name, text in [
        ("create-admin", "create an admin account unless the email is taken"),
        ("set-password", "set an account's password and end its sessions"),
    ]:
        command = commands.add_parser(name, help=text)
        command.add_argument("email")
        command.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
    commands.add_parser("list-users", help="list the first 100 accounts")
    for name, text in KEY_COMMANDS.items():
        commands.add_parser(name, help=text)
    commands.add_parser(
        "reencrypt", help="re-encrypt stored data with the newest DATA_ENCRYPTION_KEYS key"
    )
    commands.add_parser(
        "purge", help="delete now what is past its retention (docs/operations.md, Retention)"
    )
    commands.add_parser(
        "worker", help="run background jobs: the outbox relay, the queue's consumer, the schedule"
    )
    commands.add_parser("jobs-dead", help="list the jobs that failed every attempt")
    retry = commands.add_parser("jobs-retry", help="try dead jobs again from their first attempt")
    retry.add_argument("ids", nargs="*", help="the dead jobs' ids (from jobs-dead)")
    retry.add_argument("--all", action="store_true", help="every dead job")
    resource = commands.add_parser("new-resource", help="write a new owner-scoped resource")
    resource.add_argument("name", help="plural, lowercase: orders, invoices, line_items")
    args = parser.parse_args(argv)
    if args.command != "serve" or args.reload:
        # Paused by `python -m app` for the server's start-up; the process
        # that serves turns it back on once started (app/core/workers.py).
        gc.enable()
    if args.command in KEY_COMMANDS:
        print(_new_key(args.command))
        return 0
    if args.command == "new-resource":
        return new_resource(args.name)
    settings = _load_settings()
    configure_logging(settings)

    if args.command == "serve":
        if args.reload:
            serve_reloading(settings)
        else:
            serve(settings)
        return 0
    if args.command == "migrate":
        migrate(settings, args.revision)
        return 0
    if args.command == "worker":
        with contextlib.suppress(KeyboardInterrupt):
            work(settings)
        return 0
    extra: tuple[str, ...] = ()
    if args.command in {"create-admin", "set-password"}:
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else _prompt()
        extra = (args.email, password)
    from app.core.security.keyring import KeyringMissing, UndecryptableValue

    try:
        if args.command == "reencrypt":
            print(asyncio.run(_reencrypt(settings)))
        elif args.command == "purge":
            print(asyncio.run(_purge(settings)))
        elif args.command in {"jobs-dead", "jobs-retry"}:
            ids, every = getattr(args, "ids", []), getattr(args, "all", False)
            print(asyncio.run(_dead_jobs(settings, args.command, ids, every)))
        else:
            print(asyncio.run(_with_users(settings, args.command, *extra)))
    except (ValueError, LookupError, DomainError, KeyringMissing, UndecryptableValue) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        if not _schema_missing(exc):
            raise
        print("error: the database has no tables yet; run `make migrate` first", file=sys.stderr)
        return 2
    return 0


def new_resource(name: str) -> int:
    """Scaffold `name` into this checkout; needs no settings, as it touches only files."""
    import subprocess

    from app.scaffold import ScaffoldError
    from app.scaffold import new_resource as scaffold

    try:
        written = scaffold(APP_DIR.parent, name)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # A name's length and place in the alphabet move lines and imports: the
    # linter's own fixes settle both.
    paths = [str(path) for path in written if path.suffix == ".py"]
    for ruff in (["check", "--fix-only", "--select", "I"], ["format"]):
        command = [sys.executable, "-m", "ruff", *ruff, "--quiet", *paths]
        subprocess.run(command, check=False)  # noqa: S603 -- our interpreter, our files
    print("\n".join(str(path.relative_to(APP_DIR.parent)) for path in written))
    return 0


def _schema_missing(exc: DBAPIError) -> bool:
    # SQLite says so in words; PostgreSQL with SQLSTATE 42P01 (undefined table).
    return "no such table" in str(exc.orig) or getattr(exc.orig, "sqlstate", None) == "42P01"


def _prompt() -> str:
    import getpass
    import warnings

    # Without a terminal getpass falls back to standard input, echoing what it
    # reads, and a closed input ends in EOFError: a script must say
    # --password-stdin instead.
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            first = getpass.getpass("Password: ")
            repeat = getpass.getpass("Repeat: ")
        except getpass.GetPassWarning:
            raise SystemExit(
                "error: no terminal to ask for the password on; pipe it in with --password-stdin"
            ) from None
        except EOFError:
            raise SystemExit("error: no password given") from None
        except KeyboardInterrupt:
            raise SystemExit(130) from None
    if repeat != first:
        raise SystemExit("error: the passwords differ")
    return first


def serve_reloading(settings: Settings) -> None:
    """`serve --reload`: one process, restarted when a file under app/ changes."""
    import uvicorn

    if settings.is_production:
        raise SystemExit("error: --reload is for development; APP_ENV is production")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=True,
        reload_dirs=[str(APP_DIR)],
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_keep_alive=settings.keepalive_timeout_seconds,
    )
