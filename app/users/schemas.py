from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from app.core.security.password_policy import MAX_LENGTH, check_not_email
from app.core.text import StoredName
from app.identity.fields import Email, NewPassword
from app.identity.models import FULL_NAME_MAX_LENGTH
from app.rbac.schemas import RoleName

CurrentPassword = Annotated[
    str, Field(min_length=1, max_length=MAX_LENGTH, json_schema_extra={"format": "password"})
]
FullName = Annotated[StoredName, Field(min_length=1, max_length=FULL_NAME_MAX_LENGTH)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: NewPassword
    full_name: FullName | None = None

    @field_validator("password")
    @classmethod
    def _not_the_email(cls, password: str, info: ValidationInfo) -> str:
        # `email` is declared first, so it is already validated (or absent) here.
        email = info.data.get("email")
        return check_not_email(password, email) if email else password


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword
    new_password: NewPassword


class UserAdminUpdate(BaseModel):
    """What an administrator may change; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    # Strict: a lax bool turns "no", "0" or 0 into false, and false here ends
    # every session of the user.
    is_active: StrictBool | None = None
    roles: Annotated[list[RoleName], Field(max_length=32)] | None = None


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    roles: list[str]
    created_at: datetime
