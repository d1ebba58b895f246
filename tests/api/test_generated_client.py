"""A typed client generated from /openapi.json works against the app (docs/first-requests.md).

The client is generated with openapi-python-client (a dev dependency) into a
temporary directory, then drives the app in-process: register, log in, create
an item and list it, through the generated functions and models only.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import PASSWORD

PACKAGE = "groundwork_client"
# Only guards against a hang failing the run forever; not a timing assertion.
GENERATOR_GUARD_SECONDS = 300


@pytest.fixture
def generated(app: FastAPI, tmp_path: Path) -> Iterator[Callable[[str], ModuleType]]:
    schema: dict[str, Any] = app.openapi()
    (tmp_path / "openapi.json").write_text(json.dumps(schema), encoding="utf-8")
    # No formatting hooks: the generated code runs the same unformatted.
    (tmp_path / "config.yaml").write_text("post_hooks: []\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(tmp_path / "openapi.json"),
            "--config",
            str(tmp_path / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
            # A construct of the schema the generator cannot express is a failure.
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=GENERATOR_GUARD_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


async def test_a_generated_client_registers_logs_in_and_creates_an_item(
    app: FastAPI, generated: Callable[[str], ModuleType]
) -> None:
    api = generated("client")
    models = generated("models")
    register = generated("api.auth.auth_register")
    issue_token = generated("api.auth.auth_issue_token")
    create_item = generated("api.items.items_create")
    list_items = generated("api.items.items_list")
    # In-process, like the rest of the suite; an undocumented status raises.
    options: dict[str, Any] = {
        "base_url": "http://testserver",
        "httpx_args": {"transport": httpx.ASGITransport(app=app)},
        "raise_on_unexpected_status": True,
    }

    async with api.Client(**options) as anonymous:
        user = await register.asyncio(
            client=anonymous, body=models.UserCreate(email="typed@example.com", password=PASSWORD)
        )
        pair = await issue_token.asyncio(
            client=anonymous,
            body=models.AuthIssueTokenForm(username="typed@example.com", password=PASSWORD),
        )
    assert isinstance(user, models.UserRead)
    assert isinstance(pair, models.TokenPair)

    async with api.AuthenticatedClient(token=pair.access_token, **options) as signed_in:
        created = await create_item.asyncio(
            client=signed_in, body=models.ItemCreate(title="from a generated client")
        )
        page = await list_items.asyncio(client=signed_in)
        refused = await create_item.asyncio_detailed(
            client=signed_in, body=models.ItemCreate(title="")
        )

    assert isinstance(created, models.ItemRead)
    assert created.owner_id == user.id
    assert isinstance(page, models.PageItemRead)
    assert [item.title for item in page.items] == ["from a generated client"]
    # Errors come back as the documented problem models, not as raw bytes.
    assert refused.status_code == 422
    assert isinstance(refused.parsed, models.ValidationProblem)
