"""`new-resource NAME`: a minimal owner-scoped feature package, wired in, from templates.

Writes the package (permissions, model, schemas, repository, service,
router), its migration and its tests, and adds it to the permission
catalogue, the router assembly, the table registry, the data export and the
import layers. Every
edit of an existing file is checked before any file is written, so a refusal
leaves the tree as it was.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"[a-z][a-z0-9_]*[a-z0-9]")
_PACKAGE_FILES = ("permissions", "models", "schemas", "repository", "service", "router")


class ScaffoldError(ValueError):
    """The name cannot be used, or the tree is not laid out as expected."""


@dataclass(frozen=True, slots=True)
class Names:
    plural: str
    singular: str
    Model: str
    # CamelCase plural: `LineItemsPermission`.
    Plural: str

    @classmethod
    def of(cls, plural: str) -> Names:
        if not _NAME.fullmatch(plural) or keyword.iskeyword(plural) or "__" in plural:
            raise ScaffoldError(
                f"{plural!r} is not a lowercase identifier (letters, digits, single underscores)"
            )
        singular = _singular(plural)
        model = "".join(part.capitalize() for part in singular.split("_"))
        return cls(plural, singular, model, "".join(p.capitalize() for p in plural.split("_")))


def _singular(plural: str) -> str:
    if plural.endswith("ies"):
        return plural[:-3] + "y"
    if plural.endswith("s") and not plural.endswith("ss"):
        return plural[:-1]
    return plural


def new_resource(root: Path, name: str, *, today: datetime | None = None) -> list[Path]:
    """Write the resource under `root` (the repository); return the paths written or changed."""
    names = Names.of(name)
    _refuse_clashes(root, names)
    edits = _edits(root, names)
    created = _new_files(root, names, today or datetime.now(UTC))
    for path, text in {**edits, **created}.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted([*edits, *created])


def _refuse_clashes(root: Path, names: Names) -> None:
    taken = {path.stem for path in (root / "app").iterdir()}
    taken |= {path.stem for path in (root / "tests").iterdir()}
    if names.plural in taken or names.singular in taken:
        raise ScaffoldError(f"{names.plural!r} clashes with a module under app/ or tests/")
    declared = "\n".join(path.read_text() for path in (root / "app").glob("*/permissions.py"))
    if f'"{names.plural}:' in declared:
        raise ScaffoldError(f"a feature already declares {names.plural}:* permissions")
    models = (root / "app/models.py").read_text()
    if re.search(rf"\b{names.Model}\b", models) or f'"{names.plural}"' in _tables(root):
        raise ScaffoldError(f"a model {names.Model!r} or table {names.plural!r} already exists")


def _tables(root: Path) -> str:
    return "\n".join(path.read_text() for path in (root / "app").glob("*/models.py"))


def _render(template: str, names: Names, **extra: str) -> str:
    text = (TEMPLATES / template).read_text()
    return Template(text).substitute(
        plural=names.plural,
        singular=names.singular,
        Model=names.Model,
        Plural=names.Plural,
        **extra,
    )


def _new_files(root: Path, names: Names, today: datetime) -> dict[Path, str]:
    package = root / "app" / names.plural
    files = {package / "__init__.py": ""}
    for module in _PACKAGE_FILES:
        files[package / f"{module}.py"] = _render(f"{module}.py.tmpl", names)
    head = _migration_head(root / "migrations/versions")
    revision = f"{int(head) + 1:04d}"
    migration = f"{today:%Y%m%d}_{revision}_{names.plural}.py"
    files[root / "migrations/versions" / migration] = _render(
        "migration.py.tmpl", names, revision=revision, down_revision=head, date=f"{today:%Y-%m-%d}"
    )
    files[root / "tests" / names.plural / "__init__.py"] = ""
    files[root / "tests" / names.plural / "test_router.py"] = _render("tests.py.tmpl", names)
    return files


def _migration_head(versions: Path) -> str:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        text = path.read_text()
        revision = re.search(r'^revision: str = "(\d+)"', text, re.MULTILINE)
        parent = re.search(r'^down_revision: str \| None = "(\d+)"', text, re.MULTILINE)
        if revision is None:
            raise ScaffoldError(f"{path.name} has no numbered revision")
        revisions.add(revision.group(1))
        if parent is not None:
            parents.add(parent.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise ScaffoldError(f"the migrations need exactly one head, not {sorted(heads)}")
    return heads.pop()


def _edits(root: Path, names: Names) -> dict[Path, str]:
    n = names
    return {
        root / "app/api/permissions.py": _catalogue(_read(root, "app/api/permissions.py"), n),
        root / "app/models.py": _register_model(_read(root, "app/models.py"), n),
        root / "app/api/v1.py": _sorted_imports(
            _read(root, "app/api/v1.py"),
            f"from app.{n.plural}.router import router as {n.plural}_router",
        )
        + f"router.include_router({n.plural}_router)\n",
        root / "app/privacy/service.py": _export(_read(root, "app/privacy/service.py"), n),
        root / "app/privacy/schemas.py": _after_block(
            _read(root, "app/privacy/schemas.py"),
            r"    items: list\[dict\[str, Any\]\]\n",
            f"    {n.plural}: list[dict[str, Any]]\n",
        ),
        root / "pyproject.toml": _replace(
            _read(root, "pyproject.toml"),
            r'(\n    "app\.users \| app\.items[^"]*)"',
            rf'\1 | app.{n.plural}"',
        ),
    }


def _read(root: Path, relative: str) -> str:
    return (root / relative).read_text()


def _replace(text: str, pattern: str, replacement: str | Callable[[re.Match[str]], str]) -> str:
    changed, count = re.subn(pattern, replacement, text, count=1)
    if count != 1:
        raise ScaffoldError(f"cannot find where to add the resource: /{pattern}/")
    return changed


def _after_block(text: str, pattern: str, addition: str) -> str:
    return _replace(text, f"({pattern})", lambda match: match.group(1) + addition)


def _sorted_imports(text: str, line: str) -> str:
    """Add `line` among the `from app.` imports, where the linter's sort puts it."""
    lines = text.splitlines(keepends=True)
    module = line.split()[1]
    starts = [i for i, existing in enumerate(lines) if existing.startswith("from app.")]
    if not starts:
        raise ScaffoldError("cannot find the `from app.` imports")
    later = [i for i in starts if lines[i].split()[1] > module]
    if later:
        at = later[0]
    else:
        at = starts[-1]
        if lines[at].rstrip().endswith("("):
            while not lines[at].startswith(")"):
                at += 1
        at += 1
    return "".join([*lines[:at], line + "\n", *lines[at:]])


def _register_model(text: str, n: Names) -> str:
    text = _sorted_imports(text, f"from app.{n.plural}.models import {n.Model}")
    match = re.search(r"__all__ = \[\n((?:    .*\n)+)\]", text)
    if match is None:
        raise ScaffoldError("cannot find __all__ in app/models.py")
    entries = sorted({*match.group(1).split(), f'"{n.Model}",'})
    listed = "".join(f"    {entry}\n" for entry in entries)
    return text[: match.start(1)] + listed + text[match.end(1) :]


def _catalogue(text: str, n: Names) -> str:
    text = _sorted_imports(text, f"from app.{n.plural}.permissions import {n.Plural}Permission")
    match = re.search(r"PermissionCatalogue\(\n((?:    .*\n)+)\)", text)
    if match is None:
        raise ScaffoldError("cannot find the PermissionCatalogue(...) in app/api/permissions.py")
    entries = sorted({*match.group(1).split(), f"{n.Plural}Permission,"})
    listed = "".join(f"    {entry}\n" for entry in entries)
    return text[: match.start(1)] + listed + text[match.end(1) :]


def _export(text: str, n: Names) -> str:
    text = _sorted_imports(text, f"from app.{n.plural}.service import {n.Model}Service")
    text = _after_block(
        text,
        r"        items = await ItemService\(self\.session, self\.resources\)"
        r"\.owned_by\(user\.id\)\n",
        f"        {n.plural} = await {n.Model}Service(self.session, self.resources)"
        ".owned_by(user.id)\n",
    )
    return _after_block(
        text,
        r'            items=\[item\.model_dump\(mode="json"\) for item in items\],\n',
        f'            {n.plural}=[row.model_dump(mode="json") for row in {n.plural}],\n',
    )
