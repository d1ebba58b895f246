"""How much SQL one authenticated request costs: the principal in one query, the page in one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.resources import Resources
from tests.conftest import AccountFactory
from tests.factories import create_item

# Resolving the principal (user, live login session and role grants) is one
# statement and the page is one; BEGIN and ROLLBACK are not statements here.
AUTHENTICATED_LIST_STATEMENTS = 2


@contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE goes through the cursor; PostgreSQL's BEGIN does not.
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_an_authenticated_item_list_costs_two_statements(
    client: httpx.AsyncClient, resources: Resources, make_account: AccountFactory
) -> None:
    account = await make_account()
    await create_item(resources, account.id, "one")

    with counted_statements(resources.engine) as statements:
        response = await client.get("/api/v1/items", headers=account.headers)

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1
    assert len(statements) <= AUTHENTICATED_LIST_STATEMENTS, statements
