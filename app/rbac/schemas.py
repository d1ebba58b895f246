from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.core.authz import Permission

RoleName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")]
Permissions = Annotated[list[Permission], Field(max_length=len(Permission))]


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
