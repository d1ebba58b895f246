"""What every benchmark needs before it measures: a user, a token, a few items."""

from __future__ import annotations

import httpx

PASSWORD = "correct-horse-battery-staple"
ITEMS = 5


async def token_for(http: httpx.AsyncClient) -> str:
    """Register a user with a few items and return its access token."""
    email = "bench@example.com"
    await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    answer = await http.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(ITEMS):
        created = await http.post("/api/v1/items", json={"title": f"item {n}"}, headers=headers)
        created.raise_for_status()
    return token
