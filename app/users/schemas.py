from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from app.core.security.password_policy import (
    MAX_LENGTH,
    MIN_LENGTH,
    check_not_email,
    check_strength,
)
from app.core.text import StoredName
from app.rbac.schemas import RoleName
from app.users.models import FULL_NAME_MAX_LENGTH


def _lower(value: str) -> str:
    return value.lower()


def _any_case(word: str) -> str:
    # JSON Schema patterns have no case-insensitive flag; domains are caseless.
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# email-validator refuses special-use domains (`someone@host.test`). The pattern
# only advertises that to clients; the validator is still what enforces it.
_SPECIAL_USE = "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
EMAIL_PATTERN = rf"^(?!.*@(?:[^@]*\.)?(?:{_SPECIAL_USE})$)"
Email = Annotated[
    EmailStr, Field(json_schema_extra={"pattern": EMAIL_PATTERN}), AfterValidator(_lower)
]
# The bounds are in the schema too, so the OpenAPI document tells clients. The
# minimum is only advertised: `check_strength` enforces it, with its own message.
NewPassword = Annotated[
    str,
    Field(
        max_length=MAX_LENGTH,
        json_schema_extra={"format": "password", "writeOnly": True, "minLength": MIN_LENGTH},
    ),
    AfterValidator(check_strength),
]
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


class UserExport(BaseModel):
    """Everything held about one person, in one document."""

    profile: UserRead
    items: list[dict[str, Any]]
    audit_events: list[dict[str, Any]]
    exported_at: datetime
