"""/openapi.json tells generated clients the truth about errors and headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx

from app.api.permissions import CATALOGUE
from app.core.errors import PROBLEM_MEDIA_TYPE
from app.core.security.password_policy import MAX_LENGTH, MIN_LENGTH
from tests.conftest import AccountFactory

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PROBLEM_REF = "#/components/schemas/Problem"
VALIDATION_PROBLEM_REF = "#/components/schemas/ValidationProblem"

Operation = tuple[str, str, dict[str, Any]]


def operations(schema: dict[str, Any]) -> Iterator[Operation]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def test_the_schema_lists_the_api(schema: dict[str, Any]) -> None:
    found = {(method, path) for method, path, _ in operations(schema)}

    assert {
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/items"),
        ("GET", "/api/v1/items"),
    } <= found


def test_error_responses_are_documented_only_as_problems(schema: dict[str, Any]) -> None:
    wrong = []
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status[:1] not in {"4", "5"}:
                continue
            content = response.get("content", {})
            expected = VALIDATION_PROBLEM_REF if status == "422" else PROBLEM_REF
            documented = content.get(PROBLEM_MEDIA_TYPE, {}).get("schema", {}).get("$ref")
            if set(content) != {PROBLEM_MEDIA_TYPE} or documented != expected:
                wrong.append((method, path, status, sorted(content), documented))

    assert wrong == []


def test_every_response_documents_the_request_id_header(schema: dict[str, Any]) -> None:
    missing = [
        (method, path, status)
        for method, path, operation in operations(schema)
        for status, response in operation["responses"].items()
        if "X-Request-ID" not in response.get("headers", {})
    ]

    assert missing == []


def test_operations_with_input_document_422(schema: dict[str, Any]) -> None:
    missing = [
        (method, path)
        for method, path, operation in operations(schema)
        if ("requestBody" in operation or operation.get("parameters"))
        and "422" not in operation["responses"]
    ]

    assert missing == []


def test_authenticated_operations_document_401(schema: dict[str, Any]) -> None:
    secured = [(m, p, op) for m, p, op in operations(schema) if op.get("security")]
    missing = [(method, path) for method, path, op in secured if "401" not in op["responses"]]

    assert secured
    assert missing == []


def test_guarded_and_signed_in_operations_document_the_bearer_scheme(
    schema: dict[str, Any],
) -> None:
    bearer: list[dict[str, list[str]]] = [{"OAuth2PasswordBearer": []}]
    paths = schema["paths"]

    assert paths["/api/v1/items"]["get"]["security"] == bearer  # a permission guard
    assert paths["/api/v1/users/me"]["get"]["security"] == bearer  # a signed-in user
    assert "security" not in paths["/api/v1/auth/token"]["post"]  # public
    assert list(schema["components"]["securitySchemes"]) == ["OAuth2PasswordBearer"]


def test_item_creation_documents_location_and_etag(schema: dict[str, Any]) -> None:
    created = schema["paths"]["/api/v1/items"]["post"]["responses"]["201"]

    assert {"Location", "ETag", "X-Request-ID"} <= set(created["headers"])


def test_problem_schemas_describe_the_error_body(schema: dict[str, Any]) -> None:
    schemas = schema["components"]["schemas"]
    problem = schemas["Problem"]
    validation = schemas["ValidationProblem"]
    issue_ref = validation["properties"]["errors"]
    issue = schemas["ValidationIssue"]

    fields = {"type", "title", "status", "detail", "instance", "request_id"}
    assert set(problem["properties"]) == fields
    assert set(problem["required"]) >= {"type", "title", "status", "detail", "instance"}
    assert set(validation["properties"]) == fields | {"errors"}
    assert "ValidationIssue" in str(issue_ref)
    assert set(issue["properties"]) == {"loc", "msg", "type"}


def test_password_flow_points_at_the_token_endpoint(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    password_flows = [
        scheme["flows"]["password"]
        for scheme in schemes.values()
        if scheme.get("type") == "oauth2" and "password" in scheme.get("flows", {})
    ]

    assert len(password_flows) == 1
    assert password_flows[0]["tokenUrl"] == "/api/v1/auth/token"


async def test_token_endpoint_takes_the_oauth2_form(
    schema: dict[str, Any], client: httpx.AsyncClient
) -> None:
    body = schema["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]

    assert "application/x-www-form-urlencoded" in body
    form = body["application/x-www-form-urlencoded"]["schema"]
    if "$ref" in form:
        form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]
    # An empty form value is read as a missing one, so the schema asks for one character.
    assert set(form["required"]) == {"username", "password"}
    assert all(form["properties"][name]["minLength"] == 1 for name in form["required"])
    empty = await client.post("/api/v1/auth/token", data={"username": "", "password": "x"})
    assert empty.status_code == 422
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


def test_new_passwords_advertise_the_policy_length(schema: dict[str, Any]) -> None:
    # A field the server checks in a validator must still show its bounds, or a
    # schema-driven client sends a 5-character password it thinks is valid.
    new_passwords = {
        (name, field): prop
        for name, component in schema["components"]["schemas"].items()
        for field, prop in component.get("properties", {}).items()
        if prop.get("format") == "password" and prop.get("writeOnly")
    }
    wrong = {
        key: (prop.get("minLength"), prop.get("maxLength"))
        for key, prop in new_passwords.items()
        if (prop.get("minLength"), prop.get("maxLength")) != (MIN_LENGTH, MAX_LENGTH)
    }

    assert {name for name, _ in new_passwords} >= {"UserCreate", "PasswordResetConfirm"}
    assert wrong == {}


async def test_item_title_is_not_offered_as_nullable(
    schema: dict[str, Any], client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    # A partial update may leave `title` out but not null it, and says so.
    title = schema["components"]["schemas"]["ItemUpdate"]["properties"]["title"]
    owner = await make_account()
    created = await client.post("/api/v1/items", json={"title": "t"}, headers=owner.headers)
    refused = await client.patch(
        created.headers["Location"], json={"title": None}, headers=owner.headers
    )

    assert "null" not in str(title)
    assert title["type"] == "string"
    assert refused.status_code == 422


async def test_email_fields_advertise_the_refused_special_use_domains(
    schema: dict[str, Any], client: httpx.AsyncClient
) -> None:
    # `someone@host.test` looks like `format: email` but email-validator refuses it.
    emails = [
        prop
        for component in schema["components"]["schemas"].values()
        for prop in component.get("properties", {}).values()
        if prop.get("format") == "email"
    ]
    refused = await client.post(
        "/api/v1/auth/register",
        json={"email": "someone@host.TEST", "password": "a-long-enough-password"},
    )

    assert emails
    assert all(re.match(prop["pattern"], "someone@example.com") for prop in emails)
    assert not any(re.match(prop["pattern"], "someone@host.TEST") for prop in emails)
    assert refused.status_code == 422


def test_role_bodies_accept_the_catalogue_and_nothing_else(schema: dict[str, Any]) -> None:
    """A generated client gets the catalogue as an enum, as the server checks it."""
    schemas = schema["components"]["schemas"]

    assert schemas["Permission"]["enum"] == [str(permission) for permission in CATALOGUE]
    for body in ("RoleCreate", "RoleUpdate"):
        items = schemas[body]["properties"]["permissions"]["items"]
        assert items == {"$ref": "#/components/schemas/Permission"}, body


def test_assigned_role_names_follow_the_role_name_rule(schema: dict[str, Any]) -> None:
    # No role can exist outside RoleCreate's pattern, so assigning one cannot either.
    schemas = schema["components"]["schemas"]
    created = schemas["RoleCreate"]["properties"]["name"]
    roles = schemas["UserAdminUpdate"]["properties"]["roles"]
    assigned = next(branch["items"] for branch in roles["anyOf"] if branch["type"] == "array")

    assert assigned["pattern"] == created["pattern"]
    assert assigned["maxLength"] == created["maxLength"]


def test_stored_text_advertises_what_is_refused(
    schema: dict[str, Any],
) -> None:
    schemas = schema["components"]["schemas"]

    def pattern_of(prop: dict[str, Any]) -> str:
        # Optional fields are `anyOf: [string, null]`.
        [text] = [branch for branch in prop.get("anyOf", [prop]) if branch.get("type") == "string"]
        pattern: str = text["pattern"]
        return pattern

    patterns = [
        pattern_of(schemas[model]["properties"][field])
        for model, field in [
            ("ItemCreate", "title"),
            ("ItemCreate", "description"),
            ("ItemUpdate", "title"),
            ("ItemUpdate", "description"),
            ("UserCreate", "full_name"),
            ("ProfileUpdate", "full_name"),
        ]
    ]
    role_paths = [
        parameter["schema"]["pattern"]
        for method, path, operation in operations(schema)
        if path == "/api/v1/roles/{name}"
        for parameter in operation["parameters"]
        if parameter["name"] == "name"
    ]

    assert len(role_paths) == 2
    for pattern in patterns + role_paths:
        assert re.fullmatch(pattern, "plain text, even with ünïcode")
        assert not re.fullmatch(pattern, "before\x00after")
    # Titles and names must also hold something besides whitespace.
    for pattern in [patterns[0], patterns[2], patterns[4], patterns[5]]:
        assert re.fullmatch(pattern, "  spaced out  ")
        assert not re.fullmatch(pattern, " \t\u3000\u00a0")
