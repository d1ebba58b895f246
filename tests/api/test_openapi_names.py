"""The schema's names are ones a person reads and a generated client can use as names."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SCHEMAS = "#/components/schemas/"
# Lower-case words joined by hyphens: a function name in any generator's language.
CLIENT_FRIENDLY = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

Operation = tuple[str, str, dict[str, Any]]


def operations(schema: dict[str, Any]) -> Iterator[Operation]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def endpoint_names(app: FastAPI) -> dict[tuple[str, str], str]:
    """(method, path) -> the endpoint function's name, as FastAPI would title it."""
    names = {}
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path_format:
            for method in context.methods or ():
                names[(method.lower(), context.path_format)] = context.original_route.name
    return names


def test_operation_ids_are_unique_and_client_friendly(schema: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    unfriendly = [i for i in ids if not CLIENT_FRIENDLY.match(i) or len(i) > 40]

    assert len(ids) >= 25
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    assert unfriendly == []
    by_operation = {(m, p): op["operationId"] for m, p, op in operations(schema)}
    assert by_operation[("post", "/api/v1/auth/register")] == "auth-register"
    assert by_operation[("post", "/api/v1/auth/token")] == "auth-issue-token"
    assert by_operation[("post", "/api/v1/items")] == "items-create"
    assert by_operation[("get", "/api/v1/audit-events")] == "audit-list-events"


def test_every_operation_has_a_summary_of_its_own(app: FastAPI, schema: dict[str, Any]) -> None:
    names = endpoint_names(app)
    auto_named = {
        operation["operationId"]
        for method, path, operation in operations(schema)
        # FastAPI's own summary is the function's name in title case.
        if operation.get("summary", names[(method, path)].replace("_", " ").title())
        == names[(method, path)].replace("_", " ").title()
    }

    # Every endpoint has a docstring, so no operation keeps FastAPI's title-cased name.
    assert auto_named == set()


def test_the_summary_is_the_docstrings_first_sentence_and_the_rest_its_description(
    schema: dict[str, Any],
) -> None:
    refresh = schema["paths"]["/api/v1/auth/refresh"]["post"]
    metrics = schema["paths"]["/metrics"]["get"]
    ready = schema["paths"]["/health/ready"]["get"]
    logout_all = schema["paths"]["/api/v1/auth/logout-all"]["post"]

    assert refresh["summary"] == "Spend a refresh token for a new pair"
    assert refresh["description"] == "A spent token presented again ends its session."
    # A first sentence wrapped over two lines is still read whole.
    assert metrics["summary"] == "Every worker's metrics"
    assert metrics["description"].startswith("In production, only with `METRICS_TOKEN` or from")
    assert ready["summary"] == "Whether this replica can serve"
    assert "Redis is reported but does not decide" in ready["description"]
    assert logout_all["summary"] == "End every session of the caller, this one included"
    assert "description" not in logout_all


def test_every_request_body_is_a_schema_with_a_name_of_its_own(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    bodies = {
        (method, path, media_type): content["schema"].get("$ref", "inline")
        for method, path, operation in operations(schema)
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items()
    }
    unnamed = [
        key
        for key, ref in bodies.items()
        if not ref.startswith(SCHEMAS)
        or ref.removeprefix(SCHEMAS) not in components
        or ref.removeprefix(SCHEMAS).startswith("Body_")
    ]

    assert len(bodies) >= 10
    assert unnamed == []
    form = ("post", "/api/v1/auth/token", "application/x-www-form-urlencoded")
    assert bodies[form] == SCHEMAS + "AuthIssueTokenForm"
    assert components["AuthIssueTokenForm"]["title"] == "AuthIssueTokenForm"
    assert not [name for name in components if name.startswith("Body_")]
    assert "Body_" not in str(schema)


async def test_a_router_added_later_is_named_the_same_way(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory()
    router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

    @router.post("")
    async def create_order(body: dict[str, int]) -> None:
        """Place an order.

        The rest of the story.
        """

    @router.get("/mine", operation_id="my-orders")
    async def list_my_orders() -> None:
        """The caller's orders, e.g. last week's."""

    app.include_router(router)
    schema = app.openapi()
    created = schema["paths"]["/api/v1/orders"]["post"]
    mine = schema["paths"]["/api/v1/orders/mine"]["get"]

    assert created["operationId"] == "orders-create"
    assert created["summary"] == "Place an order"
    assert created["description"] == "The rest of the story."
    assert created["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": SCHEMAS + "OrdersCreateBody"
    }
    # An id the route sets itself is kept; "e.g." does not end a sentence.
    assert mine["operationId"] == "my-orders"
    assert mine["summary"] == "The caller's orders, e.g. last week's"
