from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.identity.fields import Email, NewPassword

# Opaque tokens are 43 characters; the bound only stops absurd input early.
OpaqueToken = Annotated[str, Field(min_length=1, max_length=256)]


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: OpaqueToken


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class PasswordResetAccepted(BaseModel):
    """What happens next; the same words whether or not the email has an account."""

    detail: str


class PasswordResetConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: OpaqueToken
    new_password: NewPassword
