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

from app.core.config import Settings
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
