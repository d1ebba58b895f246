"""Input fields every account feature validates alike: an email, a new password."""

from __future__ import annotations

import re
from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, EmailStr, Field

from app.core.security.password_policy import MAX_LENGTH, MIN_LENGTH, check_strength


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
