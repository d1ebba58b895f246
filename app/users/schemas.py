from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)

from app.core.security.password_policy import MAX_LENGTH, check_new_password
from app.users.models import FULL_NAME_MAX_LENGTH


def _lower(value: str) -> str:
    return value.lower()


Email = Annotated[EmailStr, AfterValidator(_lower)]
# The length bound is in the schema too, so the OpenAPI document tells clients.
NewPassword = Annotated[
    str, Field(max_length=MAX_LENGTH, json_schema_extra={"format": "password", "writeOnly": True})
]
FullName = Annotated[str, Field(min_length=1, max_length=FULL_NAME_MAX_LENGTH)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: NewPassword
    full_name: FullName | None = None

    @field_validator("password")
    @classmethod
    def _strong_password(cls, password: str, info: ValidationInfo) -> str:
        # `email` is declared first, so it is already validated (or absent) here.
        return check_new_password(password, email=info.data.get("email"))


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    roles: list[str]
    created_at: datetime
