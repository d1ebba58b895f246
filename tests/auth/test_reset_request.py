"""A reset request must not tell, by the work done before answering, whether an account exists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.resources import Resources
from tests.conftest import AccountFactory

RESET_REQUEST = "/api/v1/auth/password-reset/request"


@contextmanager
def statements_on(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs inside the block, as sent."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def test_known_and_unknown_emails_run_the_same_statements_before_the_answer(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()

    with statements_on(resources.engine) as known:
        assert (await client.post(RESET_REQUEST, json={"email": account.email})).status_code == 202
    with statements_on(resources.engine) as unknown:
        answer = await client.post(RESET_REQUEST, json={"email": "nobody@example.com"})
        assert answer.status_code == 202

    assert known
    assert known == unknown


async def test_the_answer_says_what_happens_next_in_the_same_words_for_any_email(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    known = await client.post(RESET_REQUEST, json={"email": account.email})
    unknown = await client.post(RESET_REQUEST, json={"email": "nobody-here@example.com"})

    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert "/api/v1/auth/password-reset/confirm" in known.json()["detail"]
