"""The container build files and the CI workflow, checked without an engine.

`make image-test` (tests/image/) builds and runs them; these checks need no
container engine and run with the suite.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import SECRET_SETTINGS, Settings
from app.core.tracing import FLUSH_AT_SHUTDOWN_SECONDS

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _tool(name: str) -> str:
    # Prefer the copy in the running venv so the pinned dev dependency is used
    # even when the venv is not activated.
    bin_dir = Path(sys.executable).parent
    for candidate in (bin_dir / name, bin_dir / f"{name}.exe"):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found; run `uv sync` to install the dev dependencies")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_hadolint_passes() -> None:
    result = _run(_tool("hadolint"), "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, f"hadolint failed:\n{result.stdout}{result.stderr}"


def test_compose_file_matches_compose_spec() -> None:
    # The vendored schema ships inside check-jsonschema, so this needs no network.
    result = _run(
        _tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE_FILE),
    )
    assert result.returncode == 0, f"check-jsonschema failed:\n{result.stdout}{result.stderr}"


def test_dockerfile_runs_as_non_root_with_healthcheck() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    users = re.findall(r"^\s*USER\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    assert users, "Dockerfile has no USER instruction"
    # The last USER wins; it must not be root by name or by uid.
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"}, f"final USER is root: {users[-1]}"
    assert group not in {"root", "0"}, f"final USER group is root: {users[-1]}"
    assert re.search(r"^\s*HEALTHCHECK\s+(?!NONE\b)", text, flags=re.MULTILINE | re.IGNORECASE), (
        "Dockerfile has no HEALTHCHECK"
    )


def test_the_ci_workflow_matches_github_actions_schema() -> None:
    result = _run(
        _tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        str(WORKFLOW),
    )
    assert result.returncode == 0, f"check-jsonschema failed:\n{result.stdout}{result.stderr}"


def _compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return parsed


def _seconds(duration: str) -> float:
    # Compose durations such as "50s", "1m30s".
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def test_compose_builds_the_image_once_for_api_and_migrate() -> None:
    services = _compose()["services"]

    assert [name for name, service in services.items() if "build" in service] == ["api"]
    assert services["migrate"]["image"] == services["api"]["image"]


def test_compose_migrate_does_not_inherit_the_servers_healthcheck() -> None:
    assert _compose()["services"]["migrate"]["healthcheck"] == {"disable": True}


def test_compose_publishes_every_port_on_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_pins_the_servers_host_and_port_against_dotenv() -> None:
    api = _compose()["services"]["api"]
    environment = api["environment"]
    published = api["ports"][0].rsplit(":", 1)[1]

    assert environment["HOST"] == "::"
    assert environment["PORT"] == published


def test_compose_sends_no_traces_and_no_mail_unless_asked() -> None:
    environment = _compose()["services"]["api"]["environment"]

    # Names the profiles' services only when the developer says so.
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${LOCAL_OTLP_ENDPOINT:-}"
    assert environment["MAIL_BACKEND"] == "${LOCAL_MAIL_BACKEND:-console}"


def test_compose_gives_the_api_a_grace_period_covering_the_whole_drain() -> None:
    api = _compose()["services"]["api"]
    environment = api["environment"]
    needed = (
        float(environment["SHUTDOWN_DRAIN_SECONDS"])
        + float(environment["SHUTDOWN_TIMEOUT_SECONDS"])
        + FLUSH_AT_SHUTDOWN_SECONDS
    )

    assert _seconds(api["stop_grace_period"]) > needed
    # A request still running at the end gets the app's own 504 before it is cut off.
    default_timeout = Settings.model_fields["request_timeout_seconds"].default
    assert float(environment["SHUTDOWN_TIMEOUT_SECONDS"]) >= default_timeout


def test_compose_mailpit_is_in_its_own_profile_on_loopback() -> None:
    mailpit = _compose()["services"]["mailpit"]

    assert mailpit["image"].startswith("axllent/mailpit:")
    assert mailpit["profiles"] == ["mail"]
    assert mailpit["ports"] == ["127.0.0.1:8025:8025"]


def test_the_build_context_leaves_out_local_environments_and_state() -> None:
    patterns = set(DOCKERIGNORE.read_text(encoding="utf-8").split())

    for excluded in (".git", ".env", ".tools", ".venv", ".venv-*", ".data", "tests"):
        assert excluded in patterns, f".dockerignore misses {excluded}"


def _dockerfile_args() -> dict[str, str]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.MULTILINE))


def test_the_python_base_is_pinned_by_digest_and_overridable() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")

    assert re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", _dockerfile_args()["PYTHON_IMAGE"])
    assert "FROM ${PYTHON_IMAGE} AS runtime" in text


def test_the_image_starts_under_an_init_and_listens_on_both_ip_versions() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")

    assert re.search(r'^ENTRYPOINT \["tini", "--"\]$', text, flags=re.MULTILINE)
    assert re.search(r"^\s+HOST=:: \\$", text, flags=re.MULTILINE)


def test_the_code_is_copied_after_the_dependencies_in_layers_of_its_own() -> None:
    copies = re.findall(r"^COPY (.+)$", DOCKERFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    runtime = copies[copies.index("--from=builder /app/.venv /app/.venv") :]

    assert runtime == [
        "--from=builder /app/.venv /app/.venv",
        "alembic.ini ./",
        "migrations ./migrations",
        "app ./app",
    ]


# --- secrets: files under /run/secrets, never environment variables -------------------

DEV_SECRETS = ROOT / "docker" / "dev-secrets"
SECRETS_SOURCE = "${GROUNDWORK_SECRETS:-./docker/dev-secrets}/"


def _with_defaults(value: object) -> str:
    """A compose value as it reads with no variable set: `${NAME:-default}` is `default`."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def _container_environment(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What the app in `service` sees: .env first, the file's `environment:` over it."""
    environment = {
        k: _with_defaults(v) for k, v in _compose()["services"][service]["environment"].items()
    }
    return {**dotenv, **environment}


def _load_settings(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], secrets_dir: Path
) -> Settings:
    for name in (*SECRET_SETTINGS, "secrets_dir", "app_env"):
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(f"{name.upper()}_FILE", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # /run/secrets in the container is the compose file's secrets directory on the host.
    assert environment["SECRETS_DIR"] == "/run/secrets"
    monkeypatch.setenv("SECRETS_DIR", str(secrets_dir))
    return Settings(_env_file=None)


def test_compose_gives_every_secret_as_a_file_and_none_as_a_value() -> None:
    compose = _compose()
    declared = compose["secrets"]

    assert set(declared) == {"secret_key", "database_url", "postgres_password"}
    for name, secret in declared.items():
        assert secret == {"file": SECRETS_SOURCE + name}
        assert (DEV_SECRETS / name).is_file()
    for service in ("api", "migrate"):
        app = compose["services"][service]
        environment = app["environment"]
        assert set(app["secrets"]) == {"secret_key", "database_url"}
        assert environment["SECRETS_DIR"] == "/run/secrets"
        given = {name.upper(): environment.get(name.upper(), "") for name in SECRET_SETTINGS}
        # The stack's Redis has no password, so its URL carries none and is no secret.
        assert "@" not in given.pop("REDIS_URL")
        assert set(given.values()) == {""}, f"{service} sets a secret as a value: {given}"
        assert not any(key.endswith("_FILE") for key in environment), environment
    postgres = compose["services"]["postgres"]
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert postgres["secrets"] == ["postgres_password"]


@pytest.mark.parametrize("service", ["api", "migrate"])
def test_the_development_secrets_start_a_fresh_clone_whatever_dotenv_holds(
    monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    # A .env written for `make run` (as .env.example has it) names a key and a database.
    dotenv = {
        "SECRET_KEY": "insecure-development-secret-change-me",
        "DATABASE_URL": "sqlite+aiosqlite:///./.data/groundwork.db",
    }

    settings = _load_settings(monkeypatch, _container_environment(service, dotenv), DEV_SECRETS)

    postgres = _compose()["services"]["postgres"]["environment"]
    password = (DEV_SECRETS / "postgres_password").read_text().strip()
    assert settings.database_url == (
        f"postgresql+asyncpg://{postgres['POSTGRES_USER']}:{password}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert (
        settings.secret_key.get_secret_value() == (DEV_SECRETS / "secret_key").read_text().strip()
    )


def test_the_development_secrets_are_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = {**_container_environment("api", {}), "APP_ENV": "production"}

    with pytest.raises(ValueError, match="SECRET_KEY"):
        _load_settings(monkeypatch, environment, DEV_SECRETS)


def test_production_starts_with_secrets_generated_into_their_own_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What docs/deploying.md has an operator write into ./secrets.
    key = subprocess.run(
        [sys.executable, "-m", "app", "new-secret-key"], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "secret_key").write_text(key)
    url = "postgresql+asyncpg://groundwork:0123456789abcdef@postgres:5432/groundwork"
    (tmp_path / "database_url").write_text(url)
    environment = {**_container_environment("api", {}), "APP_ENV": "production"}

    settings = _load_settings(monkeypatch, environment, tmp_path)

    assert settings.secret_key.get_secret_value() == key.strip()
    assert settings.database_url == url


def test_production_secrets_stay_out_of_git_and_the_build_context() -> None:
    ignored = _run("git", "check-ignore", "-q", "secrets/secret_key")
    patterns = set(DOCKERIGNORE.read_text(encoding="utf-8").split())

    assert ignored.returncode == 0, "secrets/ is not ignored by git"
    assert {"secrets", "docker/dev-secrets"} <= patterns
