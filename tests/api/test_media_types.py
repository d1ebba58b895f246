"""A body of a media type the operation does not read is 415, named as such, never a 422."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from app.core.errors import PROBLEM_MEDIA_TYPE, problem_type
from tests.conftest import AccountFactory

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
FORM = "application/x-www-form-urlencoded"
SIGN_UP = b'{"email": "media@example.com", "password": "correct-horse-battery-staple"}'


def assert_unsupported(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == problem_type("unsupported-media-type")
    assert body["status"] == 415
    assert "errors" not in body
    return body


async def test_json_sent_as_text_is_415_naming_json_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(REGISTER, content=SIGN_UP, headers={"Content-Type": "text/plain"})

    body = assert_unsupported(response)
    assert "Content-Type: application/json" in body["detail"]
    again = await client.post(
        REGISTER, content=SIGN_UP, headers={"Content-Type": "application/json"}
    )
    assert again.status_code == 201, again.text


async def test_a_body_without_content_type_or_sent_as_a_form_is_415(
    client: httpx.AsyncClient,
) -> None:
    untyped = await client.post(REGISTER, content=SIGN_UP)
    form = await client.post(REGISTER, data={"email": "media@example.com", "password": "x"})

    assert "content-type" not in untyped.request.headers
    assert_unsupported(untyped)
    assert_unsupported(form)


async def test_the_token_endpoint_given_json_is_415_naming_the_form_type(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(TOKEN, json={"username": "a@example.com", "password": "x"})

    body = assert_unsupported(response)
    assert f"Content-Type: {FORM}" in body["detail"]


async def test_json_variants_and_both_form_types_are_read(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    with_charset = await client.post(
        "/api/v1/items",
        content=b'{"title": "charset"}',
        headers={**account.headers, "Content-Type": "application/json; charset=utf-8"},
    )
    suffixed = await client.post(
        "/api/v1/items",
        content=b'{"title": "suffix"}',
        headers={**account.headers, "Content-Type": "application/vnd.example+json"},
    )
    multipart = await client.post(
        TOKEN, files={"username": (None, account.email), "password": (None, account.password)}
    )

    assert with_charset.status_code == 201, with_charset.text
    assert suffixed.status_code == 201, suffixed.text
    assert multipart.status_code == 200, multipart.text


async def test_a_missing_body_is_still_a_validation_error(client: httpx.AsyncClient) -> None:
    json_route = await client.post(REGISTER)
    form_route = await client.post(TOKEN, headers={"Content-Type": "application/json"})

    assert json_route.status_code == 422
    assert json_route.json()["type"] == problem_type("validation-error")
    assert form_route.status_code == 422
    assert form_route.json()["type"] == problem_type("validation-error")


async def test_every_operation_with_a_body_answers_and_documents_415(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    admin = await make_account(roles=("admin",))
    schema = (await client.get("/openapi.json")).json()
    checked, wrong = [], []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if "requestBody" not in operation:
                continue
            url = path.format(**path_values(operation))
            response = await client.request(
                method,
                url,
                content=b"not a body",
                headers={**admin.headers, "Content-Type": "text/plain"},
            )
            checked.append((method, path))
            if response.status_code != 415 or "415" not in operation["responses"]:
                wrong.append((method, path, response.status_code, sorted(operation["responses"])))

    assert len(checked) >= 10
    assert wrong == []


def path_values(operation: dict[str, Any]) -> dict[str, str]:
    """A value for each path parameter that names nothing."""
    return {
        parameter["name"]: str(uuid.uuid4())
        if parameter["schema"].get("format") == "uuid"
        else "no-such-name"
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
