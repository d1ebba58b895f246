"""Lint the container build files so a broken Dockerfile or compose file fails CI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"


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
