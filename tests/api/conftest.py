"""Fixtures of the API-wide tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    """The OpenAPI document the app serves."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document
