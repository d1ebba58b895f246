"""/openapi.json tells generated clients the truth about errors and headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.core.errors import PROBLEM_MEDIA_TYPE

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PROBLEM_REF = "#/components/schemas/Problem"
VALIDATION_PROBLEM_REF = "#/components/schemas/ValidationProblem"

Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


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
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
