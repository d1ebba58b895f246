from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from app.core.resources import Resources
from app.items.models import Item
from tests.conftest import Account, AccountFactory

ITEMS = "/api/v1/items"


async def create(client: httpx.AsyncClient, account: Account, **body: object) -> httpx.Response:
    response = await client.post(ITEMS, json={"title": "a title", **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response


async def count_items(resources: Resources) -> int:
    async with resources.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Item)) or 0)


# --- create -----------------------------------------------------------------


async def test_create_returns_201_with_location_etag_and_the_item(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await create(client, account, title="Buy milk", description="2 litres")

    body = response.json()
    assert set(body) == {
        "id",
        "title",
        "description",
        "owner_id",
        "created_at",
        "updated_at",
        "version",
    }
    assert body["title"] == "Buy milk"
    assert body["description"] == "2 litres"
    assert body["owner_id"] == str(account.id)
    assert body["version"] == 1
    assert response.headers["location"] == f"{ITEMS}/{body['id']}"
    assert response.headers["etag"]
    fetched = await client.get(response.headers["location"], headers=account.headers)
    assert fetched.json() == body
    assert fetched.headers["etag"] == response.headers["etag"]


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 42}, "title"),
        ({"title": ["a"]}, "title"),
        ({"title": "ok", "description": "x" * 5001}, "description"),
        ({"title": "ok", "owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"title": "ok", "version": 7}, "version"),
        ({"title": "ok", "id": str(uuid.uuid4())}, "id"),
    ],
)
async def test_create_rejects_bad_bodies_with_422(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    body: dict[str, object],
    bad_field: str,
) -> None:
    account = await make_account()

    response = await client.post(ITEMS, json=body, headers=account.headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert bad_field in {str(part) for error in response.json()["errors"] for part in error["loc"]}


async def test_create_rejects_malformed_json_with_422(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.post(
        ITEMS,
        content=b'{"title": "unterminated',
        headers={**account.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["type"] == "urn:groundwork:problem:validation-error"


async def test_items_require_authentication(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", ITEMS),
        ("POST", ITEMS),
        ("GET", f"{ITEMS}/{uuid.uuid4()}"),
        ("PATCH", f"{ITEMS}/{uuid.uuid4()}"),
        ("DELETE", f"{ITEMS}/{uuid.uuid4()}"),
    ]:
        response = await client.request(method, path, json={"title": "x"})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"


# --- object-level authorization ---------------------------------------------


async def test_another_users_item_is_404_for_every_operation(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    owner, intruder = await make_account(), await make_account()
    location = (await create(client, owner, title="private")).headers["location"]

    read = await client.get(location, headers=intruder.headers)
    patch = await client.patch(location, json={"title": "mine"}, headers=intruder.headers)
    delete = await client.delete(location, headers=intruder.headers)
    listing = await client.get(ITEMS, headers=intruder.headers)

    assert [read.status_code, patch.status_code, delete.status_code] == [404, 404, 404]
    # The same answer as for an id that does not exist: existence is not leaked.
    missing = await client.get(f"{ITEMS}/{uuid.uuid4()}", headers=intruder.headers)
    assert read.json()["detail"] == missing.json()["detail"]
    assert listing.json() == {"items": [], "next_cursor": None}
    untouched = await client.get(location, headers=owner.headers)
    assert untouched.json()["title"] == "private"
    assert await count_items(resources) == 1


async def test_admin_lists_and_edits_everyones_items(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    member = await make_account()
    admin = await make_account(roles=("admin",))
    location = (await create(client, member, title="member's")).headers["location"]

    listing = await client.get(ITEMS, headers=admin.headers)
    patched = await client.patch(location, json={"title": "moderated"}, headers=admin.headers)

    assert [item["title"] for item in listing.json()["items"]] == ["member's"]
    assert patched.status_code == 200
    assert patched.json()["owner_id"] == str(member.id)


async def test_item_id_that_is_not_a_uuid_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.get(f"{ITEMS}/not-a-uuid", headers=account.headers)

    assert response.status_code == 422


# --- pagination ---------------------------------------------------------------


async def test_list_pages_newest_first_without_gaps_or_repeats(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    created = [(await create(client, account, title=f"item {n}")).json()["id"] for n in range(7)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(ITEMS, params=params, headers=account.headers)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(created))


async def test_default_page_size_is_20(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    for n in range(21):
        await create(client, account, title=f"item {n}")

    page = (await client.get(ITEMS, headers=account.headers)).json()

    assert len(page["items"]) == 20
    assert page["next_cursor"] is not None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
async def test_limit_outside_1_to_100_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, limit: str
) -> None:
    account = await make_account()

    response = await client.get(ITEMS, params={"limit": limit}, headers=account.headers)

    assert response.status_code == 422


async def test_a_cursor_cannot_be_forged_or_edited(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    for n in range(3):
        await create(client, account, title=f"item {n}")
    cursor = (await client.get(ITEMS, params={"limit": 1}, headers=account.headers)).json()[
        "next_cursor"
    ]
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]

    for bad in [flipped, "garbage", "!!!", "e30", "x" * 600]:
        response = await client.get(ITEMS, params={"cursor": bad}, headers=account.headers)
        assert response.status_code in {400, 422}, bad
        assert response.headers["content-type"] == "application/problem+json"


# --- conditional requests -----------------------------------------------------


async def test_if_none_match_with_the_current_tag_is_304(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    created = await create(client, account)
    location, etag = created.headers["location"], created.headers["etag"]

    cached = await client.get(location, headers={**account.headers, "If-None-Match": etag})
    stale = await client.get(location, headers={**account.headers, "If-None-Match": '"old"'})

    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert stale.status_code == 200


async def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    created = await create(client, account, title="v1")
    location, first_tag = created.headers["location"], created.headers["etag"]
    second = await client.patch(
        location, json={"title": "v2"}, headers={**account.headers, "If-Match": first_tag}
    )
    assert second.status_code == 200
    assert second.json()["version"] == 2
    assert second.headers["etag"] != first_tag

    stale = await client.patch(
        location, json={"title": "v3"}, headers={**account.headers, "If-Match": first_tag}
    )
    stale_delete = await client.delete(location, headers={**account.headers, "If-Match": first_tag})

    assert stale.status_code == 412
    assert stale_delete.status_code == 412
    current = await client.get(location, headers=account.headers)
    assert current.json()["title"] == "v2"


async def test_an_if_match_typed_without_quotes_names_the_same_tag(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    created = await create(client, account, title="v1")
    location, tag = created.headers["location"], created.headers["etag"]

    unquoted = await client.patch(
        location, json={"title": "v2"}, headers={**account.headers, "If-Match": tag.strip('"')}
    )
    stale = await client.patch(
        location, json={"title": "v3"}, headers={**account.headers, "If-Match": tag.strip('"')}
    )

    assert unquoted.status_code == 200
    assert stale.status_code == 412


async def test_patch_updates_only_the_fields_sent(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    location = (await create(client, account, title="t", description="d")).headers["location"]

    only_title = await client.patch(location, json={"title": "t2"}, headers=account.headers)
    cleared = await client.patch(location, json={"description": None}, headers=account.headers)
    null_title = await client.patch(location, json={"title": None}, headers=account.headers)
    unknown = await client.patch(
        location, json={"owner_id": str(uuid.uuid4())}, headers=account.headers
    )

    assert only_title.json()["description"] == "d"
    assert cleared.json() == {**cleared.json(), "title": "t2", "description": None}
    assert null_title.status_code == 422
    assert unknown.status_code == 422


async def test_delete_removes_the_item(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    location = (await create(client, account)).headers["location"]

    deleted = await client.delete(location, headers=account.headers)
    again = await client.get(location, headers=account.headers)

    assert deleted.status_code == 204
    assert again.status_code == 404
    assert await count_items(resources) == 0


# --- idempotency --------------------------------------------------------------


async def test_idempotent_retry_returns_the_first_answer_and_creates_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    headers = {**account.headers, "Idempotency-Key": "order-42"}

    first = await client.post(ITEMS, json={"title": "once"}, headers=headers)
    # The item changes after the first answer; the replay still shows that answer.
    await client.patch(first.headers["location"], json={"title": "edited"}, headers=account.headers)
    retry = await client.post(ITEMS, json={"title": "once"}, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert await count_items(resources) == 1


async def test_same_idempotency_key_with_another_body_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    headers = {**account.headers, "Idempotency-Key": "order-43"}
    await client.post(ITEMS, json={"title": "first"}, headers=headers)

    response = await client.post(ITEMS, json={"title": "second"}, headers=headers)

    assert response.status_code == 422
    assert response.json()["type"] == "urn:groundwork:problem:idempotency-key-reused"
    assert await count_items(resources) == 1


async def test_idempotency_keys_are_per_user(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    alice, bob = await make_account(), await make_account()

    a = await client.post(
        ITEMS, json={"title": "x"}, headers={**alice.headers, "Idempotency-Key": "k"}
    )
    b = await client.post(
        ITEMS, json={"title": "x"}, headers={**bob.headers, "Idempotency-Key": "k"}
    )

    assert a.json()["id"] != b.json()["id"]
    assert b.json()["owner_id"] == str(bob.id)
    assert await count_items(resources) == 2


async def test_concurrent_requests_with_one_key_create_one_item(
    client: httpx.AsyncClient, make_account: AccountFactory, resources: Resources
) -> None:
    account = await make_account()
    headers = {**account.headers, "Idempotency-Key": "race"}

    responses = await asyncio.gather(
        *(client.post(ITEMS, json={"title": "race"}, headers=headers) for _ in range(5))
    )

    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count_items(resources) == 1


async def test_an_overlong_idempotency_key_is_422(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()

    response = await client.post(
        ITEMS, json={"title": "x"}, headers={**account.headers, "Idempotency-Key": "k" * 256}
    )

    assert response.status_code == 422
