from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, model_validator

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

    @model_validator(mode="after")
    def _strong_password(self) -> Self:
        check_new_password(self.password, email=self.email)
        return self


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    roles: list[str]
    created_at: datetime
