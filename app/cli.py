"""Operator commands: `python -m app <command>` (or the `groundwork` script)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from app.core.config import Settings
from app.core.logging import configure_logging

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


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
    command.upgrade(config, revision)


def serve(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
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
    )


async def _create_admin(settings: Settings, email: str, password: str) -> bool:
    from app.core.security.passwords import PasswordHasher
    from app.db.engine import create_engine, create_sessionmaker
    from app.users.service import UserService

    engine = create_engine(settings)
    hasher = PasswordHasher(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return await UserService(session, hasher).ensure_admin(email, password)
    finally:
        hasher.close()
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundwork", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API on HOST:PORT")
    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.add_argument("revision", nargs="?", default="head")
    admin = commands.add_parser("create-admin", help="create an admin account if absent")
    admin.add_argument("email")
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    args = parser.parse_args(argv)
    settings = _load_settings()
    configure_logging(settings)

    if args.command == "serve":
        serve(settings)
    elif args.command == "migrate":
        migrate(settings, args.revision)
    elif args.command == "create-admin":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else _prompt()
        try:
            created = asyncio.run(_create_admin(settings, args.email, password))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("created" if created else "an account with that email already exists")
    return 0


def _prompt() -> str:
    import getpass

    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise SystemExit("error: the passwords differ")
    return first
