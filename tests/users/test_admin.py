"""User administration: `/users` and `/users/{user_id}` with `users:read` / `users:write`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.api.permissions import CATALOGUE
from app.audit.models import AuditEvent
from app.core.resources import Resources
from app.identity.models import Role, User, UserRole
from app.items.models import Item
from tests.conftest import (
    Account,
    AccountFactory,
    bearer,
    login_status,
    refresh_status,
    start_session,
)

USERS = "/api/v1/users"
ME = "/api/v1/users/me"
ROLES = "/api/v1/roles"
ITEMS = "/api/v1/items"


async def patch_user(
    client: httpx.AsyncClient, actor: Account, target: uuid.UUID, body: dict[str, object]
) -> httpx.Response:
    return await client.patch(f"{USERS}/{target}", json=body, headers=actor.headers)


async def stored_user(resources: Resources, user_id: uuid.UUID) -> User | None:
    async with resources.sessionmaker() as session:
        return await session.get(User, user_id)


async def roles_of(client: httpx.AsyncClient, account: Account) -> list[str]:
    response = await client.get(ME, headers=account.headers)
    assert response.status_code == 200, response.text
    roles: list[str] = response.json()["roles"]
    return roles


# --- who may administer ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("GET", "/{target}", None),
        ("PATCH", "/{target}", {"is_active": False}),
        ("PATCH", "/{target}", {"roles": ["admin"]}),
        ("DELETE", "/{target}", None),
    ],
)
async def test_members_cannot_list_read_change_or_delete_users(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    method: str,
    suffix: str,
    body: dict[str, object] | None,
) -> None:
    member = await make_account()
    target = await make_account()

    response = await client.request(
        method, USERS + suffix.format(target=target.id), json=body, headers=member.headers
    )

    assert response.status_code == 403
    assert response.json()["type"] == "urn:groundwork:problem:forbidden"
    stored = await stored_user(resources, target.id)
    assert stored is not None
    assert stored.is_active
    assert await roles_of(client, target) == ["member"]
    assert await roles_of(client, member) == ["member"]


# --- listing and reading ----------------------------------------------------------------


async def test_admin_lists_every_user_newest_first_in_pages(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    members = [await make_account() for _ in range(4)]
    expected = [str(account.id) for account in reversed([admin, *members])]

    seen: list[str] = []
    cursor: str | None = None
    sizes: list[int] = []
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(USERS, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        sizes.append(len(page["items"]))
        seen += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sizes == [2, 2, 1]
    assert seen == expected


async def test_the_user_list_shows_profiles_without_secrets(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    response = await client.get(USERS, headers=admin.headers)

    assert response.status_code == 200
    listed = {user["id"]: user for user in response.json()["items"]}
    assert listed[str(member.id)] == (await client.get(ME, headers=member.headers)).json()
    assert sorted(listed[str(admin.id)]["roles"]) == ["admin", "member"]
    assert "argon2" not in response.text
    assert "password" not in response.text


async def test_a_forged_user_list_cursor_is_400(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    await make_account()
    await make_account()
    cursor = (await client.get(USERS, params={"limit": 1}, headers=admin.headers)).json()[
        "next_cursor"
    ]
    assert cursor
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]

    for forged in [flipped, "garbage", "e30"]:
        response = await client.get(USERS, params={"cursor": forged}, headers=admin.headers)
        assert response.status_code == 400, forged
        assert response.json()["type"] == "urn:groundwork:problem:invalid-cursor"


@pytest.mark.parametrize("limit", ["0", "101", "many"])
async def test_a_user_list_limit_outside_1_to_100_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, limit: str
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.get(USERS, params={"limit": limit}, headers=admin.headers)

    assert response.status_code == 422


async def test_admin_reads_one_user(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    response = await client.get(f"{USERS}/{member.id}", headers=admin.headers)

    assert response.status_code == 200
    assert response.json() == (await client.get(ME, headers=member.headers)).json()


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PATCH", {"is_active": False}), ("DELETE", None)]
)
async def test_an_unknown_user_id_is_404(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    method: str,
    body: dict[str, object] | None,
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.request(
        method, f"{USERS}/{uuid.uuid4()}", json=body, headers=admin.headers
    )

    assert response.status_code == 404
    assert response.json()["type"] == "urn:groundwork:problem:not-found"


@pytest.mark.parametrize("user_id", ["not-a-uuid", "123", "me2"])
async def test_a_user_id_that_is_not_a_uuid_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, user_id: str
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.get(f"{USERS}/{user_id}", headers=admin.headers)

    assert response.status_code == 422
    assert response.json()["type"] == "urn:groundwork:problem:validation-error"


# --- activation ----------------------------------------------------------------------------


async def test_deactivation_revokes_the_users_tokens_at_once_and_blocks_login(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    session = await start_session(client, member.email)
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 200

    response = await patch_user(client, admin, member.id, {"is_active": False})

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    for access_token in (member.token, session["access_token"]):
        denied = await client.get(ME, headers=bearer(access_token))
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
    assert await refresh_status(client, session["refresh_token"]) == 401
    assert await login_status(client, member.email) == 401


async def test_reactivation_allows_login_again_but_revives_no_old_token(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    session = await start_session(client, member.email)
    await patch_user(client, admin, member.id, {"is_active": False})

    response = await patch_user(client, admin, member.id, {"is_active": True})

    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert (await client.get(ME, headers=bearer(session["access_token"]))).status_code == 401
    assert await refresh_status(client, session["refresh_token"]) == 401
    assert await login_status(client, member.email) == 200


async def test_an_admin_cannot_deactivate_themselves(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    # Another admin exists, so it is the self-check that answers, not the last-admin one.
    await make_account(roles=("admin",))

    response = await patch_user(client, admin, admin.id, {"is_active": False})

    assert response.status_code == 409
    assert response.json()["type"] == "urn:groundwork:problem:conflict"
    me = await client.get(ME, headers=admin.headers)
    assert me.status_code == 200
    assert me.json()["is_active"] is True


# --- roles -------------------------------------------------------------------------------


async def test_granting_admin_takes_effect_on_the_users_next_request(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    assert (await client.get(USERS, headers=member.headers)).status_code == 403

    response = await patch_user(client, admin, member.id, {"roles": ["admin"]})

    assert response.status_code == 200
    assert response.json()["roles"] == ["admin"]
    # The same access token, no new login.
    assert (await client.get(USERS, headers=member.headers)).status_code == 200


async def test_revoking_admin_takes_effect_on_the_users_next_request(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    promoted = await make_account()
    await patch_user(client, admin, promoted.id, {"roles": ["admin", "member"]})
    assert (await client.get(USERS, headers=promoted.headers)).status_code == 200

    response = await patch_user(client, admin, promoted.id, {"roles": ["member"]})

    assert response.status_code == 200
    assert response.json()["roles"] == ["member"]
    assert (await client.get(USERS, headers=promoted.headers)).status_code == 403
    assert (await client.get(ITEMS, headers=promoted.headers)).status_code == 200


async def test_an_unknown_role_is_422_and_changes_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    response = await patch_user(
        client, admin, member.id, {"is_active": False, "roles": ["admin", "wizard"]}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "wizard" in response.json()["detail"]
    # Neither half of the request was applied: still active, still a plain member.
    me = await client.get(ME, headers=member.headers)
    assert me.status_code == 200
    assert me.json()["is_active"] is True
    assert me.json()["roles"] == ["member"]
    assert (await client.get(USERS, headers=member.headers)).status_code == 403


@pytest.mark.parametrize("value", ["no", "false", "0", 0, 0.0, "off", "f"])
async def test_deactivation_takes_a_json_boolean_and_nothing_that_looks_like_one(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources, value: object
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    response = await patch_user(client, admin, member.id, {"is_active": value})

    assert response.status_code == 422
    stored = await stored_user(resources, member.id)
    assert stored is not None
    assert stored.is_active
    assert (await client.get(ME, headers=member.headers)).status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"email": "new@example.com"},
        {"password_hash": "$argon2id$v=19$forged"},
        {"full_name": "Renamed"},
        {"id": str(uuid.uuid4())},
        {"created_at": "2000-01-01T00:00:00Z"},
    ],
)
async def test_an_unknown_field_in_an_admin_update_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    extra: dict[str, object],
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    before = await stored_user(resources, member.id)

    response = await patch_user(client, admin, member.id, {"is_active": False, **extra})

    assert response.status_code == 422
    (field,) = extra
    assert field in {str(part) for error in response.json()["errors"] for part in error["loc"]}
    after = await stored_user(resources, member.id)
    assert before is not None
    assert after is not None
    assert (after.email, after.full_name, after.password_hash, after.is_active) == (
        before.email,
        before.full_name,
        before.password_hash,
        True,
    )
    assert (await client.get(ME, headers=member.headers)).status_code == 200


async def test_the_last_admin_cannot_remove_their_own_admin_role(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))

    response = await patch_user(client, admin, admin.id, {"roles": ["member"]})

    assert response.status_code == 409
    assert response.json()["type"] == "urn:groundwork:problem:conflict"
    assert "admin" in await roles_of(client, admin)
    assert (await client.get(USERS, headers=admin.headers)).status_code == 200


async def test_an_admin_can_remove_their_own_admin_role_while_another_active_admin_exists(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    await make_account(roles=("admin",))

    response = await patch_user(client, admin, admin.id, {"roles": ["member"]})

    assert response.status_code == 200
    assert response.json()["roles"] == ["member"]
    assert (await client.get(USERS, headers=admin.headers)).status_code == 403


async def test_a_deactivated_admin_does_not_count_as_another_admin(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    dormant = await make_account(roles=("admin",))
    assert (await patch_user(client, admin, dormant.id, {"is_active": False})).status_code == 200

    response = await patch_user(client, admin, admin.id, {"roles": ["member"]})

    assert response.status_code == 409
    assert "admin" in await roles_of(client, admin)


async def test_nobody_can_deactivate_or_delete_the_last_active_admin(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))
    operator = await make_account()
    created = await client.post(
        ROLES,
        json={"name": "operator", "permissions": ["users:read", "users:write"]},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    assigned = await patch_user(client, admin, operator.id, {"roles": ["member", "operator"]})
    assert assigned.status_code == 200, assigned.text

    deactivate = await patch_user(client, operator, admin.id, {"is_active": False})
    demote = await patch_user(client, operator, admin.id, {"roles": ["member"]})
    delete = await client.delete(f"{USERS}/{admin.id}", headers=operator.headers)

    assert [deactivate.status_code, demote.status_code, delete.status_code] == [409, 409, 409]
    stored = await stored_user(resources, admin.id)
    assert stored is not None
    assert stored.is_active
    assert (await client.get(USERS, headers=admin.headers)).status_code == 200


async def active_admins(resources: Resources) -> int:
    async with resources.sessionmaker() as session:
        statement = (
            select(func.count())
            .select_from(UserRole)
            .join(Role, Role.id == UserRole.role_id)
            .join(User, User.id == UserRole.user_id)
            .where(Role.name == "admin", User.is_active.is_(True))
        )
        return int(await session.scalar(statement) or 0)


def removal(client: httpx.AsyncClient, how: str, actor: Account, other: Account) -> Any:
    """A request by `actor` that would leave `other`, or itself, no longer an active admin."""
    if how == "demote":
        return patch_user(client, actor, other.id, {"roles": ["member"]})
    if how == "deactivate":
        return patch_user(client, actor, other.id, {"is_active": False})
    if how == "delete":
        return client.delete(f"{USERS}/{other.id}", headers=actor.headers)
    return client.delete(ME, headers=actor.headers)


# Each trial is a test of its own, so each starts from exactly two admins.
@pytest.mark.parametrize("trial", range(3))
@pytest.mark.parametrize("how", ["demote", "deactivate", "delete", "leave"])
async def test_the_last_active_admin_survives_two_concurrent_removals(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    how: str,
    trial: int,
) -> None:
    first = await make_account(roles=("admin",))
    second = await make_account(roles=("admin",))
    assert await active_admins(resources) == 2

    # Two requests in flight at once, each on a session and connection of its own.
    responses = await asyncio.gather(
        removal(client, how, first, second), removal(client, how, second, first)
    )

    statuses = sorted(response.status_code for response in responses)
    assert await active_admins(resources) == 1, statuses
    assert statuses[0] in {200, 204}, statuses
    assert statuses[1] in {401, 403, 409}, statuses


# --- deletion -------------------------------------------------------------------------------


async def test_deleting_another_user_removes_them_and_their_items(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    for n in range(2):
        created = await client.post(ITEMS, json={"title": f"t{n}"}, headers=member.headers)
        assert created.status_code == 201
    await client.post(ITEMS, json={"title": "admin's"}, headers=admin.headers)

    response = await client.delete(f"{USERS}/{member.id}", headers=admin.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{USERS}/{member.id}", headers=admin.headers)).status_code == 404
    assert (await client.get(ME, headers=member.headers)).status_code == 401
    assert await login_status(client, member.email) == 401
    async with resources.sessionmaker() as session:
        owned = select(func.count()).select_from(Item).where(Item.owner_id == member.id)
        assert await session.scalar(owned) == 0
        assert await session.scalar(select(func.count()).select_from(Item)) == 1


# --- audit -------------------------------------------------------------------------------


async def test_a_user_update_is_audited_with_its_changes(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()

    response = await patch_user(
        client, admin, member.id, {"is_active": False, "roles": ["member", "admin", "member"]}
    )

    assert response.status_code == 200
    async with resources.sessionmaker() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "user.updated"))
        ).all()
    assert len(events) == 1
    event = events[0]
    assert event.actor_id == admin.id
    assert event.target_type == "user"
    assert event.target_id == str(member.id)
    assert event.details == {"is_active": False, "roles": ["admin", "member"]}
    assert event.request_id == response.headers["x-request-id"]


# --- no one grants more than they hold ------------------------------------------------------


async def helpdesk(
    client: httpx.AsyncClient, make_account: AccountFactory, admin: Account
) -> Account:
    """A member who may also read and change users, and holds nothing else."""
    created = await client.post(
        ROLES,
        json={"name": "helpdesk", "permissions": ["users:read", "users:write"]},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    account = await make_account()
    assigned = await patch_user(client, admin, account.id, {"roles": ["member", "helpdesk"]})
    assert assigned.status_code == 200, assigned.text
    return account


async def update_events_by(resources: Resources, actor: Account) -> list[AuditEvent]:
    async with resources.sessionmaker() as session:
        statement = select(AuditEvent).where(
            AuditEvent.action == "user.updated", AuditEvent.actor_id == actor.id
        )
        return list((await session.scalars(statement)).all())


@pytest.mark.parametrize("whom", ["itself", "another"])
@pytest.mark.parametrize(
    "body",
    [
        {"roles": ["member", "helpdesk", "admin"]},
        {"roles": ["admin"]},
        {"is_active": True, "roles": ["member", "auditor"]},
    ],
)
async def test_a_user_writer_cannot_give_a_role_with_permissions_it_lacks(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    whom: str,
    body: dict[str, object],
) -> None:
    admin = await make_account(roles=("admin",))
    writer = await helpdesk(client, make_account, admin)
    await client.post(
        ROLES, json={"name": "auditor", "permissions": ["audit:read"]}, headers=admin.headers
    )
    target = writer if whom == "itself" else await make_account()
    before = await roles_of(client, target)

    response = await patch_user(client, writer, target.id, body)

    assert response.status_code == 403, response.text
    assert response.json()["type"] == "urn:groundwork:problem:forbidden"
    assert await roles_of(client, target) == before
    assert (await client.get(ROLES, headers=writer.headers)).status_code == 403
    assert await update_events_by(resources, writer) == []


async def test_a_refused_grant_leaves_the_rest_of_the_update_undone(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))
    writer = await helpdesk(client, make_account, admin)
    member = await make_account()

    response = await patch_user(client, writer, member.id, {"is_active": False, "roles": ["admin"]})

    assert response.status_code == 403
    stored = await stored_user(resources, member.id)
    assert stored is not None
    assert stored.is_active
    assert (await client.get(ME, headers=member.headers)).status_code == 200


async def test_a_user_writer_gives_roles_within_what_it_holds_and_takes_any_away(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    writer = await helpdesk(client, make_account, admin)
    await client.post(
        ROLES, json={"name": "auditor", "permissions": ["audit:read"]}, headers=admin.headers
    )
    colleague = await make_account()
    auditor = await make_account()
    await patch_user(client, admin, auditor.id, {"roles": ["member", "auditor"]})

    given = await patch_user(client, writer, colleague.id, {"roles": ["member", "helpdesk"]})
    # A role the user keeps is no grant, even one the caller lacks; dropping one is none either.
    kept = await patch_user(client, writer, auditor.id, {"roles": ["auditor"]})

    assert given.status_code == 200, given.text
    assert given.json()["roles"] == ["helpdesk", "member"]
    assert kept.status_code == 200, kept.text
    assert await roles_of(client, auditor) == ["auditor"]


@pytest.mark.parametrize("lacking", [None, *CATALOGUE])
async def test_giving_admin_is_judged_against_the_whole_catalogue(
    client: httpx.AsyncClient, make_account: AccountFactory, lacking: str | None
) -> None:
    """Admin holds every catalogued permission: only a caller holding each may give it."""
    admin = await make_account(roles=("admin",))
    held = [str(permission) for permission in CATALOGUE if permission != lacking]
    created = await client.post(
        ROLES, json={"name": "deputy", "permissions": held}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    deputy, member = await make_account(), await make_account()
    assert (await patch_user(client, admin, deputy.id, {"roles": ["deputy"]})).status_code == 200

    response = await patch_user(client, deputy, member.id, {"roles": ["member", "admin"]})

    if lacking is None:
        assert response.status_code == 200, response.text
        assert await roles_of(client, member) == ["admin", "member"]
    else:
        assert response.status_code == 403, response.text
        assert lacking in response.json()["detail"]
        assert await roles_of(client, member) == ["member"]
