"""Production refuses to start on unsafe settings, and says which one is wrong."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.core.config import DEFAULT_SECRET_KEY, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = "postgresql+asyncpg://app:pw@db.internal:5432/groundwork"
GOOD_SECRET = "MwkN27K4vl-hAOYbQdyWj3aXU3eaVN4OioZR5QkSz2M"
# Settings read the environment too; none of these may leak in from the machine.
_SETTING_VARIABLES = (
    "APP_ENV",
    "SECRET_KEY",
    "DEBUG",
    "DATABASE_URL",
    "TRUSTED_HOSTS",
    "REDIS_URL",
    "TRUSTED_PROXIES",
    "METRICS_ALLOWED_NETWORKS",
    "MAIL_BACKEND",
    "LOG_LEVEL",
    "DB_ECHO",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def production(**overrides: object) -> Settings:
    values: dict[str, Any] = {
        "app_env": "production",
        "database_url": POSTGRES_URL,
        "secret_key": SecretStr(GOOD_SECRET),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def refusal_messages(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return " ".join(error["msg"] for error in exc.value.errors()).lower()


def test_production_accepts_postgres_and_a_long_random_secret() -> None:
    settings = production()

    assert settings.is_production
    assert settings.secret_key.get_secret_value() == GOOD_SECRET
    assert settings.database_url == POSTGRES_URL


def test_production_names_what_it_accepts_but_should_not_be_left_as_it_is() -> None:
    defaults = production().production_cautions
    configured = production(
        trusted_hosts="api.example.com", redis_url="redis://cache:6379/0", mail_backend="smtp"
    )

    assert [caution.split()[0] for caution in defaults] == [
        "TRUSTED_HOSTS",
        "REDIS_URL",
        "MAIL_BACKEND",
    ]
    assert configured.production_cautions == []
    assert Settings(_env_file=None).production_cautions == []


def test_production_refuses_a_missing_secret_key() -> None:
    with pytest.raises(ValidationError) as exc:
        Settings(_env_file=None, app_env="production", database_url=POSTGRES_URL)

    assert "secret_key" in refusal_messages(exc)


def test_production_refuses_the_default_secret_key() -> None:
    with pytest.raises(ValidationError) as exc:
        production(secret_key=SecretStr(DEFAULT_SECRET_KEY))

    assert "secret_key" in refusal_messages(exc)


@pytest.mark.parametrize("secret", ["s" * 31, "short"])
def test_production_refuses_a_secret_key_shorter_than_32_bytes(secret: str) -> None:
    with pytest.raises(ValidationError) as exc:
        production(secret_key=SecretStr(secret))

    assert "secret_key" in refusal_messages(exc)
    assert secret not in str(exc.value)


def test_production_accepts_a_secret_key_of_exactly_32_bytes() -> None:
    assert production(secret_key=SecretStr("97e60b27dbf646cb746d6ca29657cd5a")).is_production


@pytest.mark.parametrize(
    "secret",
    [
        "k" * 48,
        "ab" * 24,
        "changeme" * 4,
        "0123456789abcdef" * 2,
        "aaaaaaaabbbbbbbbccccccccdddddddd",
        "1111111111111111111111111111111x",
    ],
)
def test_production_refuses_a_secret_key_with_too_little_variety(secret: str) -> None:
    with pytest.raises(ValidationError) as exc:
        production(secret_key=SecretStr(secret))

    assert "secret_key" in refusal_messages(exc)
    assert secret not in str(exc.value)


@pytest.mark.parametrize(
    "secret",
    [
        GOOD_SECRET,
        "97e60b27dbf646cb746d6ca29657cd5a",
        "65f69a7bc4cd634fab33c37e44d31338ae01dcf94ab392165a9d90002a20f537",
        secrets.token_urlsafe(32),
        secrets.token_hex(32),
    ],
    # Random keys: named by position, so every collection of the suite names the same tests.
    ids=["good", "hex-16", "hex-32", "generated-urlsafe", "generated-hex"],
)
def test_production_accepts_generated_secret_keys(secret: str) -> None:
    assert production(secret_key=SecretStr(secret)).is_production


@pytest.mark.parametrize("setting", ["trusted_proxies", "metrics_allowed_networks"])
@pytest.mark.parametrize(
    "networks",
    ["0.0.0.0/0", "::/0", "10.0.0.0/8, 0.0.0.0/0", "::ffff:0:0/96", "::ffff:0.0.0.0/96", "::/64"],
)
def test_production_refuses_a_network_of_every_address(setting: str, networks: str) -> None:
    with pytest.raises(ValidationError) as exc:
        production(**{setting: networks})

    assert setting in refusal_messages(exc)


@pytest.mark.parametrize("setting", ["trusted_proxies", "metrics_allowed_networks"])
def test_production_accepts_networks_of_some_addresses(setting: str) -> None:
    settings = production(**{setting: "10.0.0.0/8, 192.168.0.0/16, fd00::/8, ::ffff:10.0.0.0/104"})

    assert len(getattr(settings, setting)) == 4


def test_networks_of_every_address_are_left_to_the_developer_outside_production() -> None:
    settings = Settings(_env_file=None, trusted_proxies="0.0.0.0/0,::/0")

    assert len(settings.trusted_proxies) == 2


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"mail_backend": "console"}, "MAIL_BACKEND"),
        ({"mail_backend": "memory"}, "MAIL_BACKEND"),
        ({"log_level": "DEBUG"}, "LOG_LEVEL"),
        ({"db_echo": True}, "DB_ECHO"),
        (
            {"shutdown_timeout_seconds": 10, "request_timeout_seconds": 30},
            "SHUTDOWN_TIMEOUT_SECONDS",
        ),
    ],
)
def test_production_warns_of_settings_meant_for_development(
    overrides: dict[str, object], named: str
) -> None:
    settled = {"trusted_hosts": "api.example.com", "redis_url": "redis://cache:6379/0"}
    settings = production(**{"mail_backend": "smtp", **settled, **overrides})

    assert [caution.split()[0] for caution in settings.production_cautions] == [named]


def test_production_refuses_debug() -> None:
    with pytest.raises(ValidationError) as exc:
        production(debug=True)

    assert "debug" in refusal_messages(exc)


@pytest.mark.parametrize(
    "sqlite_url",
    ["sqlite+aiosqlite:///./.data/groundwork.db", "sqlite+aiosqlite:///:memory:"],
)
def test_production_refuses_sqlite(sqlite_url: str) -> None:
    with pytest.raises(ValidationError) as exc:
        production(database_url=sqlite_url)

    assert "database_url" in refusal_messages(exc)


def test_development_accepts_the_embedded_defaults() -> None:
    settings = Settings(_env_file=None)

    assert settings.app_env == "development"
    assert settings.is_sqlite


def test_cli_refuses_a_short_secret_in_production_without_printing_it(tmp_path: Path) -> None:
    short_secret = "tiny-secret-7f3a"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO_ROOT),
        "APP_ENV": "production",
        "SECRET_KEY": short_secret,
        "DATABASE_URL": POSTGRES_URL,
    }

    completed = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "SECRET_KEY" in output
    assert short_secret not in output
    assert "Traceback" not in output


def test_every_setting_is_listed_in_the_example_environment_file() -> None:
    # `NAME=value`, or `# NAME=default` for a setting left at its default.
    text = (REPO_ROOT / ".env.example").read_text("utf-8")
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))

    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in listed)

    assert missing == []
