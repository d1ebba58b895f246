"""Post-processing that keeps /openapi.json honest about what the server sends."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.openapi_edge import document_edge_answers
from app.api.openapi_names import name_operations
from app.api.permissions import CATALOGUE
from app.core.errors import PROBLEM_MEDIA_TYPE
from app.core.middleware.request_id import REQUEST_ID_HEADER

_REQUEST_ID = {
    "description": "The request's id: the caller's, if well-formed, or a fresh one.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
}


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        document_edge_answers(schema, app.routes)
        name_operations(schema, app.routes)
        _form_values_are_not_empty(schema)
        _list_the_permissions(schema)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for status, response in operation.get("responses", {}).items():
                    _describe_response(status, response)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _form_values_are_not_empty(schema: dict[str, Any]) -> None:
    """FastAPI reads an empty form field as a missing one ("Field required"): say so."""
    components = schema.get("components", {}).get("schemas", {})
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type in _FORMS:
                if media_type not in content:
                    continue
                body = content[media_type]["schema"]
                if "$ref" in body:
                    body = components[body["$ref"].rsplit("/", 1)[-1]]
                for name in body.get("required", []):
                    field = body["properties"][name]
                    if field.get("type") == "string":
                        field.setdefault("minLength", 1)


def _list_the_permissions(schema: dict[str, Any]) -> None:
    """The catalogue as the enum role bodies refer to (`PermissionName` in app/rbac/schemas.py)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Permission"] = {
        "type": "string",
        "enum": [str(permission) for permission in CATALOGUE],
        "title": "Permission",
    }


def _describe_response(status: str, response: dict[str, Any]) -> None:
    response.setdefault("headers", {})[REQUEST_ID_HEADER] = _REQUEST_ID
    content = response.get("content")
    # Errors are sent as problem+json, which FastAPI would document as JSON.
    if status[:1] in {"4", "5"} and content and "application/json" in content:
        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
