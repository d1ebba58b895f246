"""The audit trail: `GET /audit-events` with `audit:read`, and what gets recorded."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.core.resources import Resources
from tests.conftest import PASSWORD, Account, AccountFactory, register

AUDIT = "/api/v1/audit-events"
TOKEN = "/api/v1/auth/token"
REGISTER = "/api/v1/auth/register"
USERS = "/api/v1/users"
ME = "/api/v1/users/me"
EVENT_FIELDS = {
    "id",
    "action",
    "actor_id",
    "target_type",
    "target_id",
    "ip",
    "user_agent",
    "request_id",
    "created_at",
    "details",
}


@pytest.fixture
def make_account(make_registered_account: AccountFactory) -> AccountFactory:
    """Accounts made over HTTP: these tests read the events registering and logging in record."""
    return make_registered_account


async def events(
    client: httpx.AsyncClient, auditor: Account, **params: str | int
) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, params=params, headers=auditor.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def count_rows(resources: Resources, action: str, target_id: uuid.UUID | None = None) -> int:
    statement = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    if target_id is not None:
        statement = statement.where(AuditEvent.target_id == str(target_id))
    async with resources.sessionmaker() as session:
        return int(await session.scalar(statement) or 0)


def moment(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["created_at"])


# --- who may read -------------------------------------------------------------------------


async def test_members_cannot_read_the_audit_trail(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    member = await make_account()

    response = await client.get(AUDIT, headers=member.headers)

    assert response.status_code == 403
    assert response.json()["type"] == "urn:groundwork:problem:forbidden"
    assert str(member.id) not in response.text


# --- listing --------------------------------------------------------------------------------


async def test_events_come_newest_first(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    registered = [await register(client, f"order-{n}@example.com") for n in range(4)]

    listed = await events(client, admin, limit=100)

    moments = [moment(event) for event in listed]
    assert moments == sorted(moments, reverse=True)
    registrations = [e["target_id"] for e in listed if e["action"] == "user.registered"]
    assert registrations[:4] == [str(user_id) for user_id in reversed(registered)]
    # The admin's own login is the oldest event after its registration.
    assert [e["action"] for e in listed[-2:]] == ["auth.login_succeeded", "user.registered"]


async def test_keyset_pages_walk_every_event_once_in_order(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    for n in range(3):
        await register(client, f"page-{n}@example.com")
        await client.post(TOKEN, data={"username": f"page-{n}@example.com", "password": "nope"})
    everything = [event["id"] for event in await events(client, admin, limit=100)]
    assert len(everything) == 8

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(AUDIT, params=params, headers=admin.headers)
        assert response.status_code == 200
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        sizes.append(len(page["items"]))
        seen += [event["id"] for event in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sizes == [3, 3, 2]
    assert seen == everything


async def test_a_forged_audit_cursor_is_400(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    cursor = (await client.get(AUDIT, params={"limit": 1}, headers=admin.headers)).json()[
        "next_cursor"
    ]
    assert cursor
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]

    for forged in [flipped, "garbage"]:
        response = await client.get(AUDIT, params={"cursor": forged}, headers=admin.headers)
        assert response.status_code == 400, forged
        assert response.json()["type"] == "urn:groundwork:problem:invalid-cursor"


async def test_events_filter_by_action(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    await client.post(TOKEN, data={"username": member.email, "password": "wrong-password"})

    failed = await events(client, admin, action="auth.login_failed")
    registered = await events(client, admin, action="user.registered")

    assert [event["target_id"] for event in failed] == [str(member.id)]
    assert {event["action"] for event in registered} == {"user.registered"}
    assert {event["target_id"] for event in registered} == {str(admin.id), str(member.id)}


async def test_events_filter_by_actor(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    await client.patch(ME, json={"full_name": "Ignored"}, headers=member.headers)
    await client.get(f"{ME}/export", headers=member.headers)

    by_member = await events(client, admin, actor_id=str(member.id))
    by_nobody = await events(client, admin, actor_id=str(uuid.uuid4()))

    assert {event["actor_id"] for event in by_member} == {str(member.id)}
    assert [event["action"] for event in by_member] == [
        "user.exported",
        "auth.login_succeeded",
        "user.registered",
    ]
    assert by_nobody == []
    both = await events(client, admin, actor_id=str(member.id), action="user.exported")
    assert [event["action"] for event in both] == ["user.exported"]


@pytest.mark.parametrize(
    "params",
    [
        {"action": "user.hacked"},
        {"action": "USER.REGISTERED"},
        {"actor_id": "not-a-uuid"},
        {"limit": 0},
        {"limit": 101},
    ],
)
async def test_an_unknown_filter_value_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, params: dict[str, str | int]
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.get(AUDIT, params=params, headers=admin.headers)

    assert response.status_code == 422
    assert response.json()["type"] == "urn:groundwork:problem:validation-error"


async def test_each_event_has_the_documented_fields(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))

    listed = await events(client, admin)

    assert listed
    for event in listed:
        assert set(event) == EVENT_FIELDS
        uuid.UUID(event["id"])
        assert isinstance(event["details"], dict)
        assert moment(event).tzinfo is not None


# --- what a login records -------------------------------------------------------------------


async def test_a_login_event_carries_the_request_id_user_agent_and_ip_of_the_login(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    agent = f"groundwork-tests/{uuid.uuid4().hex[:8]}"

    login = await client.post(
        TOKEN,
        data={"username": member.email, "password": PASSWORD},
        headers={"User-Agent": agent},
    )

    assert login.status_code == 200
    latest = (await events(client, admin, action="auth.login_succeeded", limit=1))[0]
    assert latest["request_id"] == login.headers["x-request-id"]
    assert latest["user_agent"] == agent
    assert latest["ip"] == "127.0.0.1"


async def test_a_client_supplied_request_id_is_the_one_recorded(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    request_id = f"trace-{uuid.uuid4().hex}"

    login = await client.post(
        TOKEN,
        data={"username": admin.email, "password": PASSWORD},
        headers={"X-Request-ID": request_id},
    )

    assert login.headers["x-request-id"] == request_id
    latest = (await events(client, admin, action="auth.login_succeeded", limit=1))[0]
    assert latest["request_id"] == request_id


async def test_a_successful_login_names_the_user_as_actor_and_target(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    succeeded = await events(client, admin, action="auth.login_succeeded")

    mine = [event for event in succeeded if event["target_id"] == str(member.id)]
    assert len(mine) == 1
    assert mine[0]["actor_id"] == str(member.id)
    assert mine[0]["target_type"] == "user"


async def test_a_wrong_password_is_recorded_against_the_account_although_the_login_fails(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    denied = await client.post(
        TOKEN, data={"username": member.email, "password": "not-the-password"}
    )

    assert denied.status_code == 401
    (failed,) = await events(client, admin, action="auth.login_failed")
    assert failed["target_id"] == str(member.id)
    assert failed["target_type"] == "user"
    assert failed["actor_id"] is None
    assert failed["request_id"] == denied.headers["x-request-id"]
    assert "not-the-password" not in str(failed)


async def test_an_unknown_email_is_recorded_without_a_target_or_the_email(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    stranger = f"nobody-{uuid.uuid4().hex[:8]}@example.com"

    denied = await client.post(TOKEN, data={"username": stranger, "password": PASSWORD})

    assert denied.status_code == 401
    (failed,) = await events(client, admin, action="auth.login_failed")
    assert failed["actor_id"] is None
    assert failed["target_id"] is None
    assert stranger not in str(failed)


# --- atomicity: an action that fails leaves no event -------------------------------------------


async def test_a_registration_refused_as_a_duplicate_writes_no_event(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user_id = await register(client, "twice@example.com")

    response = await client.post(
        REGISTER, json={"email": "TWICE@example.com", "password": PASSWORD}
    )

    assert response.status_code == 409
    assert await count_rows(resources, "user.registered") == 1
    assert await count_rows(resources, "user.registered", user_id) == 1


async def test_concurrent_registrations_of_one_email_write_one_event(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Whichever request loses the race (pre-check or unique constraint) leaves no event."""
    responses = await asyncio.gather(
        *(
            client.post(REGISTER, json={"email": "race@example.com", "password": PASSWORD})
            for _ in range(4)
        )
    )

    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    assert await count_rows(resources, "user.registered") == 1


async def test_a_rejected_user_update_writes_no_event(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    response = await client.patch(
        f"{USERS}/{member.id}",
        json={"is_active": False, "roles": ["member", "wizard"]},
        headers=admin.headers,
    )

    assert response.status_code == 422
    assert await count_rows(resources, "user.updated") == 0
    # The deactivation the service had already applied was rolled back with it.
    assert (await client.get(ME, headers=member.headers)).status_code == 200
