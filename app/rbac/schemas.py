from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from app.core.authz import PERMISSION_PATTERN

RoleName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")]
# The service checks each name against the app's catalogue (unknown: 422), which
# /openapi.json publishes as the `Permission` enum (app/api/openapi.py).
PermissionName = Annotated[
    str,
    Field(max_length=64, pattern=PERMISSION_PATTERN),
    WithJsonSchema({"$ref": "#/components/schemas/Permission"}),
]
# A bound on the body, not on the catalogue, whose size only the app knows.
Permissions = Annotated[list[PermissionName], Field(max_length=500)]


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RoleName
    permissions: Permissions


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permissions: Permissions


class RoleRead(BaseModel):
    name: str
    permissions: list[str]
