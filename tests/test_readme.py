"""The README names the commands the project has: each one it names exists, and each is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")
MAKEFILE = (ROOT / "Makefile").read_text("utf-8")


def makefile_targets() -> set[str]:
    """The targets `make help` lists: the ones meant for users."""
    return set(re.findall(r"^([a-z-]+):.*## ", MAKEFILE, flags=re.MULTILINE))


def readme_make_targets() -> set[str]:
    return set(re.findall(r"(?:^|[`\s])make ([a-z-]+)", README, flags=re.MULTILINE))


def test_every_make_target_the_readme_names_exists() -> None:
    assert readme_make_targets() <= makefile_targets()


def test_every_make_target_for_users_is_in_the_readme() -> None:
    # `help` and `install` are run by the others; the rest each get a line.
    assert makefile_targets() - {"help", "install", "clean"} <= readme_make_targets()


def test_every_cli_command_the_readme_names_exists(capsys: pytest.CaptureFixture[str]) -> None:
    named = set(re.findall(r"python -m app ([a-z-]+)", README))

    assert named
    for command in sorted(named):
        # --help answers before any setting is read; an unknown command is exit 2
        # (tests/test_cli.py runs `python -m app` itself as a process).
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0, (command, capsys.readouterr().err)
