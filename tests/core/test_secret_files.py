"""Secrets read from files: `<NAME>_FILE` and SECRETS_DIR, as Docker and Kubernetes mount them."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import structlog
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from app.core.config import SECRET_SETTINGS, Settings
from app.core.redaction import REDACTED, Redactor, configured_secrets

KEY = "MwkN27K4vl-hAOYbQdyWj3aXU3eaVN4OioZR5QkSz2M"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SECRET_SETTINGS, "secrets_dir", "app_env"):
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(f"{name.upper()}_FILE", raising=False)


def _settings() -> Settings:
    return Settings(_env_file=None)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_secret_setting_has_a_file_variant() -> None:
    fields = Settings.model_fields
    for name, field in fields.items():
        if "SecretStr" in str(field.annotation):
            assert name in SECRET_SETTINGS
            assert f"{name}_file" in fields


def test_a_secret_is_read_from_the_file_its_FILE_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY_FILE", str(_write(tmp_path / "key", KEY + "\n")))
    monkeypatch.setenv("SMTP_PASSWORD_FILE", str(_write(tmp_path / "smtp", "p@ss word\r\n")))
    monkeypatch.setenv("METRICS_TOKEN_FILE", str(_write(tmp_path / "metrics", "metrics-token")))
    settings = _settings()
    assert settings.secret_key.get_secret_value() == KEY
    assert settings.smtp_password == SecretStr("p@ss word")
    assert settings.metrics_token == SecretStr("metrics-token")


def test_key_lists_are_read_from_a_file_one_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    path = _write(tmp_path / "keys", "\n".join(keys) + "\n")
    monkeypatch.setenv("DATA_ENCRYPTION_KEYS_FILE", str(path))
    assert [k.get_secret_value() for k in _settings().data_encryption_keys] == keys


def test_secrets_are_read_from_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "SECRET_KEY", KEY + "\n")
    _write(tmp_path / "first_admin_password", "a long admin password")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    settings = _settings()
    assert settings.secret_key.get_secret_value() == KEY
    assert settings.first_admin_password == SecretStr("a long admin password")


@pytest.mark.parametrize("by_dir", [False, True])
def test_a_value_and_a_file_for_one_setting_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_dir: bool
) -> None:
    path = _write(tmp_path / "METRICS_TOKEN", "from-the-file")
    monkeypatch.setenv("METRICS_TOKEN", "from-the-environment")
    if by_dir:
        monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    else:
        monkeypatch.setenv("METRICS_TOKEN_FILE", str(path))
    with pytest.raises(ValidationError) as exc:
        _settings()
    assert "METRICS_TOKEN is set both directly and as a file" in str(exc.value)
    assert "from-the-file" not in str(exc.value)
    assert "from-the-environment" not in str(exc.value)


def test_a_missing_secret_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError) as exc:
        _settings()
    assert f"SECRET_KEY_FILE: cannot read {tmp_path / 'absent'}" in str(exc.value)


def test_an_unreadable_secret_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory stands in for a file without permission: root reads any file.
    monkeypatch.setenv("SMTP_PASSWORD_FILE", str(tmp_path))
    with pytest.raises(ValidationError) as exc:
        _settings()
    assert "SMTP_PASSWORD_FILE: cannot read" in str(exc.value)


def test_an_empty_secret_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY_FILE", str(_write(tmp_path / "key", "\n")))
    with pytest.raises(ValidationError, match=r"SECRET_KEY_FILE: .* is empty"):
        _settings()


def test_a_rejected_secret_is_not_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "short-but-secret")
    with pytest.raises(ValidationError) as exc:
        _settings()
    assert "short-but-secret" not in str(exc.value)


def test_an_invalid_encryption_key_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATA_ENCRYPTION_KEYS", f"{Fernet.generate_key().decode()},not-a-key-at-all")
    with pytest.raises(ValidationError, match="key 2 is not a Fernet key") as exc:
        _settings()
    assert "not-a-key-at-all" not in str(exc.value)


def test_values_read_from_files_are_redacted_from_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = secrets.token_urlsafe(24)
    previous = secrets.token_urlsafe(32)
    monkeypatch.setenv("METRICS_TOKEN_FILE", str(_write(tmp_path / "metrics", token + "\n")))
    monkeypatch.setenv("SECRET_KEY_PREVIOUS_FILE", str(_write(tmp_path / "old", previous)))
    redactor = Redactor(configured_secrets(_settings()))
    logger = structlog.get_logger()
    event = redactor(logger, "info", {"event": f"saw {token} and {previous}"})
    assert event["event"] == f"saw {REDACTED} and {REDACTED}"
