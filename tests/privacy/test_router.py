"""A person's data: its export (`GET /users/me/export`) and its erasure (`DELETE /users/me`)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, or_, select

from app.audit.models import AuditEvent
from app.core.resources import Resources
from app.identity.models import User
from app.items.models import Item
from tests.conftest import (
    PASSWORD,
    Account,
    AccountFactory,
    bearer,
    client_for,
    login_status,
    refresh_status,
    start_session,
)

ME = "/api/v1/users/me"
EXPORT = "/api/v1/users/me/export"
TOKEN = "/api/v1/auth/token"
ITEMS = "/api/v1/items"
USERS = "/api/v1/users"
ROLES = "/api/v1/roles"


@pytest.fixture
def make_account(make_registered_account: AccountFactory) -> AccountFactory:
    """Accounts made over HTTP: these tests read the events registering and logging in record."""
    return make_registered_account


async def create_item(client: httpx.AsyncClient, account: Account, title: str) -> str:
    response = await client.post(ITEMS, json={"title": title}, headers=account.headers)
    assert response.status_code == 201, response.text
    item_id: str = response.json()["id"]
    return item_id


async def items_owned_by(resources: Resources, user_id: uuid.UUID) -> int:
    async with resources.sessionmaker() as session:
        statement = select(func.count()).select_from(Item).where(Item.owner_id == user_id)
        return int(await session.scalar(statement) or 0)


async def audit_rows_about(resources: Resources, user_id: uuid.UUID) -> list[AuditEvent]:
    async with resources.sessionmaker() as session:
        statement = select(AuditEvent).where(
            or_(AuditEvent.actor_id == user_id, AuditEvent.target_id == str(user_id))
        )
        return list((await session.scalars(statement)).all())


async def all_audit_rows(resources: Resources) -> list[AuditEvent]:
    async with resources.sessionmaker() as session:
        return list((await session.scalars(select(AuditEvent))).all())


async def audit_rows_named(
    resources: Resources, user_id: uuid.UUID, action: str
) -> list[AuditEvent]:
    return [row for row in await audit_rows_about(resources, user_id) if row.action == action]


def column_values(row: AuditEvent) -> list[str]:
    return [str(getattr(row, column.key)) for column in AuditEvent.__table__.columns]


# --- export ----------------------------------------------------------------------------


async def test_export_holds_the_profile_the_callers_items_and_audit_events_about_them(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    stranger = await make_account()
    mine = {await create_item(client, account, "mine 1"), await create_item(client, account, "2")}
    theirs = await create_item(client, stranger, "not yours")
    profile = (await client.get(ME, headers=account.headers)).json()

    response = await client.get(EXPORT, headers=account.headers)

    assert response.status_code == 200
    document = response.json()
    assert document["profile"] == profile
    assert {item["id"] for item in document["items"]} == mine
    assert theirs not in response.text
    assert all(item["owner_id"] == str(account.id) for item in document["items"])
    actions = {event["action"] for event in document["audit_events"]}
    assert {"user.registered", "auth.login_succeeded"} <= actions
    for event in document["audit_events"]:
        assert str(account.id) in {event["actor_id"], event["target_id"]}, event
    assert str(stranger.id) not in response.text
    assert "argon2" not in response.text


async def test_export_is_recorded_as_a_user_exported_event(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()

    response = await client.get(EXPORT, headers=account.headers)

    assert response.status_code == 200
    exported = await audit_rows_named(resources, account.id, "user.exported")
    assert len(exported) == 1
    assert exported[0].actor_id == account.id
    assert exported[0].target_id == str(account.id)


async def test_export_leaves_out_where_others_acted_on_the_account_from(
    app: FastAPI, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    admin = await make_account(roles=("admin",))
    admin_agent = f"admin-agent/{uuid.uuid4().hex}"
    stranger_agent = f"stranger-agent/{uuid.uuid4().hex}"
    own_agent = f"own-agent/{uuid.uuid4().hex}"
    async with client_for(app, "198.51.100.7") as admin_desk:
        admin_headers = {**admin.headers, "User-Agent": admin_agent}
        await admin_desk.post(
            ROLES, json={"name": "reader", "permissions": ["items:read"]}, headers=admin_headers
        )
        changed = await admin_desk.patch(
            f"{USERS}/{account.id}", json={"roles": ["member", "reader"]}, headers=admin_headers
        )
        assert changed.status_code == 200, changed.text
    async with client_for(app, "203.0.113.9") as stranger:
        guessed = await stranger.post(
            TOKEN,
            data={"username": account.email, "password": "a-wrong-guess-000"},
            headers={"User-Agent": stranger_agent},
        )
        assert guessed.status_code == 401
    own = await start_session(client, account.email, **{"User-Agent": own_agent})

    response = await client.get(EXPORT, headers=bearer(own["access_token"]))

    assert response.status_code == 200
    events = response.json()["audit_events"]
    (update,) = [event for event in events if event["action"] == "user.updated"]
    assert update["actor_id"] == str(admin.id)
    assert update["details"] == {"roles": ["member", "reader"]}
    assert (update["ip"], update["user_agent"]) == (None, None)
    (failed,) = [event for event in events if event["action"] == "auth.login_failed"]
    assert (failed["ip"], failed["user_agent"]) == (None, None)
    for leaked in (admin_agent, "198.51.100.7", stranger_agent, "203.0.113.9"):
        assert leaked not in response.text
    # The account's own doings keep their origin: that is its own data.
    own_logins = [
        event
        for event in events
        if event["action"] == "auth.login_succeeded" and event["user_agent"] == own_agent
    ]
    assert len(own_logins) == 1
    assert own_logins[0]["ip"] == "127.0.0.1"


# --- deletion ----------------------------------------------------------------------------


async def test_a_deleted_account_loses_its_tokens_and_cannot_log_in(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    other = await start_session(client, account.email)

    response = await client.delete(ME, headers=account.headers)

    assert response.status_code == 204
    assert response.content == b""
    for access_token in (account.token, other["access_token"]):
        denied = await client.get(ME, headers=bearer(access_token))
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
    assert await refresh_status(client, other["refresh_token"]) == 401
    assert await login_status(client, account.email, PASSWORD) == 401


async def test_deleting_the_account_deletes_its_items_and_only_its_items(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    bystander = await make_account()
    for n in range(3):
        await create_item(client, account, f"item {n}")
    await create_item(client, bystander, "stays")

    response = await client.delete(ME, headers=account.headers)

    assert response.status_code == 204
    assert await items_owned_by(resources, account.id) == 0
    assert await items_owned_by(resources, bystander.id) == 1
    async with resources.sessionmaker() as session:
        assert await session.get(User, account.id) is None


async def test_audit_events_recorded_before_a_deletion_keep_no_personal_data(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    full_name = f"Zebulon Quux {uuid.uuid4().hex[:6]}"
    agent = f"identifying-agent/{uuid.uuid4().hex}"
    await client.patch(ME, json={"full_name": full_name}, headers=account.headers)
    await start_session(client, account.email, **{"User-Agent": agent})
    await client.post(
        TOKEN,
        data={"username": account.email, "password": "not-the-password"},
        headers={"User-Agent": agent},
    )
    await client.get(EXPORT, headers={**account.headers, "User-Agent": agent})
    before = await audit_rows_about(resources, account.id)
    assert any(row.user_agent == agent for row in before)
    assert any(row.ip is not None for row in before)

    response = await client.delete(ME, headers=account.headers)

    assert response.status_code == 204
    earlier = [
        row for row in await audit_rows_about(resources, account.id) if row.action != "user.deleted"
    ]
    # The bare events stay for the record...
    assert {row.id for row in earlier} == {row.id for row in before}
    # ...but nothing in them identifies the person any more.
    for row in earlier:
        assert row.ip is None, row.action
        assert row.user_agent is None, row.action
    for row in await all_audit_rows(resources):
        for value in column_values(row):
            assert account.email not in value, row.action
            assert full_name not in value, row.action
            assert agent not in value, row.action


async def test_deleting_the_account_is_recorded_as_a_user_deleted_event(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()

    response = await client.delete(ME, headers=account.headers)

    assert response.status_code == 204
    deleted = await audit_rows_named(resources, account.id, "user.deleted")
    assert len(deleted) == 1
    assert deleted[0].target_type == "user"
    assert deleted[0].target_id == str(account.id)


async def test_the_user_deleted_event_of_a_self_deletion_keeps_no_ip_or_user_agent(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    agent = f"identifying-agent/{uuid.uuid4().hex}"

    response = await client.delete(ME, headers={**account.headers, "User-Agent": agent})

    assert response.status_code == 204
    (deleted,) = await audit_rows_named(resources, account.id, "user.deleted")
    assert deleted.ip is None
    assert deleted.user_agent is None


async def test_the_last_admin_cannot_delete_their_own_account(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.delete(ME, headers=admin.headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(USERS, headers=admin.headers)).status_code == 200
    async with resources.sessionmaker() as session:
        assert await session.get(User, admin.id) is not None


async def test_an_admin_can_delete_their_own_account_while_another_admin_remains(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    leaving = await make_account(roles=("admin",))
    staying = await make_account(roles=("admin",))

    response = await client.delete(ME, headers=leaving.headers)

    assert response.status_code == 204
    gone = await client.get(f"{USERS}/{leaving.id}", headers=staying.headers)
    assert gone.status_code == 404


async def test_deleting_ones_account_keeps_the_record_of_what_it_did_to_others(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))
    created = await client.post(
        ROLES,
        json={"name": "helpdesk", "permissions": ["users:read", "users:write"]},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    rogue = await make_account()
    given = await client.patch(
        f"{USERS}/{rogue.id}", json={"roles": ["member", "helpdesk"]}, headers=admin.headers
    )
    assert given.status_code == 200, given.text
    victim = await make_account()
    agent = f"rogue-agent/{uuid.uuid4().hex}"
    rogue_headers = {**rogue.headers, "User-Agent": agent}
    deactivated = await client.patch(
        f"{USERS}/{victim.id}", json={"is_active": False}, headers=rogue_headers
    )
    assert deactivated.status_code == 200, deactivated.text

    response = await client.delete(ME, headers=rogue_headers)

    assert response.status_code == 204
    (about_victim,) = [
        row
        for row in await audit_rows_named(resources, victim.id, "user.updated")
        if row.target_id == str(victim.id)
    ]
    assert about_victim.actor_id == rogue.id
    assert about_victim.details == {"is_active": False}
    # Where the deleted person sat is their personal data, even on this event.
    assert (about_victim.ip, about_victim.user_agent) == (None, None)
    about_rogue = [row for row in await all_audit_rows(resources) if row.target_id == str(rogue.id)]
    assert {row.action for row in about_rogue} >= {"user.registered", "user.updated"}
    for row in about_rogue:
        assert (row.ip, row.user_agent, row.details) == (None, None, {}), row.action
    for row in await all_audit_rows(resources):
        for value in column_values(row):
            assert rogue.email not in value, row.action
            assert agent not in value, row.action
