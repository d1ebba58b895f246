"""`python -m app new-resource NAME`: a wired-in resource that passes, or a refusal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.scaffold import ScaffoldError, new_resource

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("app", "migrations", "tests", "pyproject.toml", "alembic.ini", ".mypy_cache")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What the command reads and writes, copied: the working tree stays as it is."""
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".mypy_cache" not in path.parts
    }


def run(checkout: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # The copy's own `app` package comes first, not the one this suite imported;
    # its tests run on a SQLite file of their own, never on this run's database.
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TEST_")},
        "PYTHONPATH": str(checkout),
    }
    return subprocess.run(
        command, cwd=checkout, env=environment, capture_output=True, text=True, check=False
    )


def read(root: Path, relative: str) -> str:
    return (root / relative).read_text()


@pytest.mark.parametrize(
    "name", ["Orders", "1orders", "line-items", "class", "orders_", "_orders", "a__b", ""]
)
def test_a_name_that_is_not_a_lowercase_identifier_is_refused(checkout: Path, name: str) -> None:
    before = snapshot(checkout)

    with pytest.raises(ScaffoldError):
        new_resource(checkout, name)

    assert snapshot(checkout) == before


@pytest.mark.parametrize("name", ["items", "item", "users", "core", "api", "roles", "audit"])
def test_a_name_that_clashes_is_refused_and_nothing_is_written(checkout: Path, name: str) -> None:
    before = snapshot(checkout)

    with pytest.raises(ScaffoldError):
        new_resource(checkout, name)

    assert snapshot(checkout) == before


def test_the_command_refuses_a_clash_with_exit_status_2(checkout: Path) -> None:
    answer = run(checkout, sys.executable, "-m", "app", "new-resource", "items")

    assert answer.returncode == 2
    assert "error:" in answer.stderr


def test_a_new_resource_passes_lint_and_its_own_tests_with_nothing_edited(checkout: Path) -> None:
    made = run(checkout, sys.executable, "-m", "app", "new-resource", "line_items")
    assert made.returncode == 0, made.stderr
    assert (checkout / "app/line_items/router.py").is_file()
    # Declared beside its routes, and one line in the catalogue admin holds.
    assert 'READ = "line_items:read"' in read(checkout, "app/line_items/permissions.py")
    assert "    LineItemsPermission,\n" in read(checkout, "app/api/permissions.py")

    venv = Path(sys.executable).parent
    for command in (
        [str(venv / "ruff"), "check", "."],
        [str(venv / "ruff"), "format", "--check", "."],
        [str(venv / "mypy")],
        [str(venv / "lint-imports")],
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/line_items",
            "tests/test_migrations.py",
            "tests/api/test_route_permissions.py",
            "tests/core/test_authz.py",
            "tests/rbac/test_router.py",
            "tests/privacy/test_router.py",
        ],
    ):
        answer = run(checkout, *command)
        assert answer.returncode == 0, (command, answer.stdout[-3000:], answer.stderr[-3000:])
