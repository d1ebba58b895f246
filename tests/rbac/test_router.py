"""Roles and their permissions: `/roles` with `roles:read` / `roles:write`."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from app.api.permissions import CATALOGUE
from app.audit.models import AuditEvent
from app.core.resources import Resources
from app.identity.models import Role, RolePermission
from tests.conftest import Account, AccountFactory

ROLES = "/api/v1/roles"
USERS = "/api/v1/users"
AUDIT = "/api/v1/audit-events"
ME = "/api/v1/users/me"
EVERY_PERMISSION = [str(permission) for permission in CATALOGUE]


def member_seed(seeded_grants: list[tuple[str, str]]) -> list[str]:
    """What the migrations grant `member`: items:read and items:write, and each added resource's."""
    return sorted(permission for role, permission in seeded_grants if role == "member")


async def list_roles(client: httpx.AsyncClient, admin: Account) -> dict[str, list[str]]:
    response = await client.get(ROLES, headers=admin.headers)
    assert response.status_code == 200, response.text
    return {role["name"]: role["permissions"] for role in response.json()}


async def create_role(
    client: httpx.AsyncClient, admin: Account, name: str, permissions: list[str]
) -> httpx.Response:
    return await client.post(
        ROLES, json={"name": name, "permissions": permissions}, headers=admin.headers
    )


async def give_roles(
    client: httpx.AsyncClient, admin: Account, account: Account, roles: list[str]
) -> None:
    response = await client.patch(
        f"{USERS}/{account.id}", json={"roles": roles}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


# --- who may read and change roles -----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", ROLES, None),
        ("POST", ROLES, {"name": "sneaky", "permissions": ["audit:read"]}),
        ("PATCH", f"{ROLES}/member", {"permissions": EVERY_PERMISSION}),
        ("DELETE", f"{ROLES}/member", None),
    ],
)
async def test_members_cannot_read_or_change_roles(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    member = await make_account()
    admin = await make_account(roles=("admin",))
    before = await list_roles(client, admin)

    response = await client.request(method, path, json=body, headers=member.headers)

    assert response.status_code == 403
    assert response.json()["type"] == "urn:groundwork:problem:forbidden"
    assert await list_roles(client, admin) == before


async def test_admin_sees_the_built_in_roles_and_their_permissions(
    client: httpx.AsyncClient, make_account: AccountFactory, seeded_grants: list[tuple[str, str]]
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.get(ROLES, headers=admin.headers)

    assert response.status_code == 200
    assert all(set(role) == {"name", "permissions"} for role in response.json())
    roles = {role["name"]: role["permissions"] for role in response.json()}
    assert sorted(roles["admin"]) == EVERY_PERMISSION
    assert len(roles["admin"]) == len(CATALOGUE)
    assert sorted(roles["member"]) == member_seed(seeded_grants)
    assert {"items:read", "items:write"} <= set(roles["member"])


async def test_admin_holds_every_permission_by_definition_not_by_rows(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    # A permission added to the catalogue is the admin's at once: there is
    # no row to add, so no data migration to write.
    admin = await make_account(roles=("admin",))

    async with resources.sessionmaker() as session:
        rows = await session.scalars(
            select(RolePermission.permission)
            .join(Role, Role.id == RolePermission.role_id)
            .where(Role.name == "admin")
        )
        assert list(rows) == []
    assert sorted((await list_roles(client, admin))["admin"]) == EVERY_PERMISSION
    for path in (ROLES, USERS, AUDIT, "/api/v1/items"):
        assert (await client.get(path, headers=admin.headers)).status_code == 200, path


# --- creating ---------------------------------------------------------------------------


async def test_creating_a_role_is_201_and_lists_it(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))

    response = await create_role(client, admin, "auditor", ["audit:read", "users:read"])

    assert response.status_code == 201
    assert response.json() == {"name": "auditor", "permissions": ["audit:read", "users:read"]}
    assert sorted((await list_roles(client, admin))["auditor"]) == ["audit:read", "users:read"]


@pytest.mark.parametrize("name", ["admin", "member", "support"])
async def test_a_role_name_already_taken_is_409(
    client: httpx.AsyncClient, make_account: AccountFactory, name: str
) -> None:
    admin = await make_account(roles=("admin",))
    assert (await create_role(client, admin, "support", ["items:read"])).status_code == 201
    before = await list_roles(client, admin)

    response = await create_role(client, admin, name, ["audit:read"])

    assert response.status_code == 409
    assert response.json()["type"] == "urn:groundwork:problem:conflict"
    assert await list_roles(client, admin) == before


@pytest.mark.parametrize(
    "permissions", [["audit:write"], ["items:read", "everything"], ["*"], ["ITEMS:READ"]]
)
async def test_an_unknown_permission_is_422_and_creates_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory, permissions: list[str]
) -> None:
    admin = await make_account(roles=("admin",))

    response = await create_role(client, admin, "custom", permissions)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "custom" not in await list_roles(client, admin)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_well_formed_permission_no_feature_declares_is_named_in_the_422(
    client: httpx.AsyncClient, make_account: AccountFactory, method: str
) -> None:
    admin = await make_account(roles=("admin",))
    body: dict[str, object] = {"permissions": ["items:read", "no_such_feature:read", "items:nuke"]}
    if method == "POST":
        body["name"] = "custom"
    path = ROLES if method == "POST" else f"{ROLES}/member"
    before = await list_roles(client, admin)

    response = await client.request(method, path, json=body, headers=admin.headers)

    assert response.status_code == 422
    assert response.json()["type"] == "urn:groundwork:problem:unprocessable"
    assert "items:nuke, no_such_feature:read" in response.json()["detail"]
    assert await list_roles(client, admin) == before


@pytest.mark.parametrize(
    "name", ["", "Admin", "1st", "has space", "a/b", "dots.not", "x" * 65, "ünicode"]
)
async def test_a_malformed_role_name_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, name: str
) -> None:
    admin = await make_account(roles=("admin",))
    before = await list_roles(client, admin)

    response = await create_role(client, admin, name, ["items:read"])

    assert response.status_code == 422
    assert await list_roles(client, admin) == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": "custom", "permissions": ["items:read"], "id": "x"},
        {"name": "custom"},
        {"permissions": ["items:read"]},
        {"name": "custom", "permissions": "items:read"},
    ],
)
async def test_a_malformed_role_body_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, body: dict[str, object]
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.post(ROLES, json=body, headers=admin.headers)

    assert response.status_code == 422
    assert "custom" not in await list_roles(client, admin)


# --- changing -----------------------------------------------------------------------------


async def test_patch_replaces_a_roles_permissions(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    await create_role(client, admin, "support", ["items:read_any", "users:read"])

    response = await client.patch(
        f"{ROLES}/support", json={"permissions": ["audit:read"]}, headers=admin.headers
    )

    assert response.status_code == 200
    assert response.json() == {"name": "support", "permissions": ["audit:read"]}
    assert (await list_roles(client, admin))["support"] == ["audit:read"]


async def test_a_role_permission_change_applies_to_holders_on_their_next_request(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    await create_role(client, admin, "auditor", [])
    await give_roles(client, admin, member, ["member", "auditor"])
    assert (await client.get(AUDIT, headers=member.headers)).status_code == 403

    granted = await client.patch(
        f"{ROLES}/auditor", json={"permissions": ["audit:read"]}, headers=admin.headers
    )
    assert granted.status_code == 200
    # The member's token was issued before the change; no new login is needed.
    assert (await client.get(AUDIT, headers=member.headers)).status_code == 200

    revoked = await client.patch(
        f"{ROLES}/auditor", json={"permissions": []}, headers=admin.headers
    )
    assert revoked.status_code == 200
    assert (await client.get(AUDIT, headers=member.headers)).status_code == 403
    assert (await client.get(ME, headers=member.headers)).json()["roles"] == ["auditor", "member"]


async def test_the_admin_role_cannot_lose_a_permission(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    fewer = [p for p in EVERY_PERMISSION if p != "audit:read"]

    for permissions in (fewer, [], ["items:read"]):
        response = await client.patch(
            f"{ROLES}/admin", json={"permissions": permissions}, headers=admin.headers
        )
        assert response.status_code == 409, permissions
        assert response.json()["type"] == "urn:groundwork:problem:conflict"

    assert sorted((await list_roles(client, admin))["admin"]) == EVERY_PERMISSION
    assert (await client.get(AUDIT, headers=admin.headers)).status_code == 200


async def test_the_admin_role_may_be_patched_with_every_permission(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.patch(
        f"{ROLES}/admin", json={"permissions": EVERY_PERMISSION}, headers=admin.headers
    )

    assert response.status_code == 200
    assert sorted(response.json()["permissions"]) == EVERY_PERMISSION


async def test_patch_with_an_unknown_permission_is_422_and_changes_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory, seeded_grants: list[tuple[str, str]]
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.patch(
        f"{ROLES}/member", json={"permissions": ["items:read", "items:nuke"]}, headers=admin.headers
    )

    assert response.status_code == 422
    assert sorted((await list_roles(client, admin))["member"]) == member_seed(seeded_grants)


@pytest.mark.parametrize(("method", "body"), [("PATCH", {"permissions": []}), ("DELETE", None)])
async def test_an_unknown_role_is_404(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    method: str,
    body: dict[str, object] | None,
) -> None:
    admin = await make_account(roles=("admin",))

    response = await client.request(method, f"{ROLES}/ghost", json=body, headers=admin.headers)

    assert response.status_code == 404
    assert response.json()["type"] == "urn:groundwork:problem:not-found"


# --- deleting ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["admin", "member"])
async def test_a_built_in_role_cannot_be_deleted(
    client: httpx.AsyncClient, make_account: AccountFactory, name: str
) -> None:
    admin = await make_account(roles=("admin",))
    before = await list_roles(client, admin)

    response = await client.delete(f"{ROLES}/{name}", headers=admin.headers)

    assert response.status_code == 409
    assert response.json()["type"] == "urn:groundwork:problem:conflict"
    assert await list_roles(client, admin) == before
    assert (await client.get(ME, headers=admin.headers)).json()["roles"] == ["admin", "member"]


async def test_deleting_a_custom_role_removes_it_and_its_grants(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    member = await make_account()
    await create_role(client, admin, "auditor", ["audit:read"])
    await give_roles(client, admin, member, ["member", "auditor"])
    assert (await client.get(AUDIT, headers=member.headers)).status_code == 200

    response = await client.delete(f"{ROLES}/auditor", headers=admin.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert "auditor" not in await list_roles(client, admin)
    again = await client.delete(f"{ROLES}/auditor", headers=admin.headers)
    patch = await client.patch(f"{ROLES}/auditor", json={"permissions": []}, headers=admin.headers)
    assert [again.status_code, patch.status_code] == [404, 404]
    assert (await client.get(AUDIT, headers=member.headers)).status_code == 403
    assert (await client.get(ME, headers=member.headers)).json()["roles"] == ["member"]


# --- audit -------------------------------------------------------------------------------


async def test_every_role_change_is_audited(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    admin = await make_account(roles=("admin",))

    created = await create_role(client, admin, "support", ["items:read_any"])
    updated = await client.patch(
        f"{ROLES}/support", json={"permissions": ["users:read"]}, headers=admin.headers
    )
    deleted = await client.delete(f"{ROLES}/support", headers=admin.headers)
    refused = await client.delete(f"{ROLES}/admin", headers=admin.headers)

    assert [created.status_code, updated.status_code, deleted.status_code] == [201, 200, 204]
    assert refused.status_code == 409
    async with resources.sessionmaker() as session:
        events = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "role.changed")
                .order_by(AuditEvent.created_at)
            )
        ).all()
    assert [event.details for event in events] == [
        {"change": "created", "permissions": ["items:read_any"]},
        {"change": "updated", "permissions": ["users:read"]},
        {"change": "deleted"},
    ]
    assert {event.target_id for event in events} == {"support"}
    assert {event.target_type for event in events} == {"role"}
    assert {event.actor_id for event in events} == {admin.id}
    assert [event.request_id for event in events] == [
        r.headers["x-request-id"] for r in (created, updated, deleted)
    ]


# --- no one grants more than they hold ----------------------------------------------------


async def role_writer(
    client: httpx.AsyncClient, make_account: AccountFactory, admin: Account
) -> Account:
    """A member who may also read and write roles, and holds nothing else."""
    created = await create_role(client, admin, "rolesmith", ["roles:read", "roles:write"])
    assert created.status_code == 201, created.text
    writer = await make_account()
    await give_roles(client, admin, writer, ["member", "rolesmith"])
    return writer


async def role_events_by(resources: Resources, account: Account) -> list[AuditEvent]:
    async with resources.sessionmaker() as session:
        statement = select(AuditEvent).where(
            AuditEvent.action == "role.changed", AuditEvent.actor_id == account.id
        )
        return list((await session.scalars(statement)).all())


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", f"{ROLES}/member", {"permissions": EVERY_PERMISSION}),
        ("PATCH", f"{ROLES}/member", {"permissions": ["items:read", "users:write"]}),
        (
            "PATCH",
            f"{ROLES}/rolesmith",
            {"permissions": ["roles:read", "roles:write", "audit:read"]},
        ),
        ("POST", ROLES, {"name": "sneaky", "permissions": ["audit:read"]}),
        ("POST", ROLES, {"name": "sneaky", "permissions": EVERY_PERMISSION}),
    ],
)
async def test_a_role_writer_cannot_give_a_role_permissions_it_does_not_hold(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    resources: Resources,
    method: str,
    path: str,
    body: dict[str, object],
) -> None:
    admin = await make_account(roles=("admin",))
    writer = await role_writer(client, make_account, admin)
    before = await list_roles(client, admin)

    response = await client.request(method, path, json=body, headers=writer.headers)

    assert response.status_code == 403, response.text
    assert response.json()["type"] == "urn:groundwork:problem:forbidden"
    assert await list_roles(client, admin) == before
    assert await role_events_by(resources, writer) == []
    assert (await client.get(AUDIT, headers=writer.headers)).status_code == 403


async def test_a_role_writer_may_create_and_change_roles_within_what_it_holds(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    writer = await role_writer(client, make_account, admin)

    created = await create_role(client, writer, "reader", ["items:read", "roles:read"])
    narrowed = await client.patch(
        f"{ROLES}/member", json={"permissions": ["items:read"]}, headers=writer.headers
    )

    assert created.status_code == 201, created.text
    assert narrowed.status_code == 200, narrowed.text
    roles = await list_roles(client, admin)
    assert roles["reader"] == ["items:read", "roles:read"]
    assert roles["member"] == ["items:read"]


async def test_a_role_writer_cannot_touch_the_admin_role(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    writer = await role_writer(client, make_account, admin)

    response = await client.patch(
        f"{ROLES}/admin", json={"permissions": EVERY_PERMISSION}, headers=writer.headers
    )

    assert response.status_code == 403
    assert sorted((await list_roles(client, admin))["admin"]) == EVERY_PERMISSION
