from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.core.text import StoredName, StoredText
from app.items.models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH

Title = Annotated[StoredName, Field(min_length=1, max_length=TITLE_MAX_LENGTH)]
Description = Annotated[StoredText, Field(max_length=DESCRIPTION_MAX_LENGTH)]


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None


class ItemUpdate(BaseModel):
    """A partial update: fields left out stay as they are; `description: null` clears it."""

    model_config = ConfigDict(extra="forbid")

    # `title` may be left out but not nulled: the schema offers no null for it.
    title: Title | SkipJsonSchema[None] = None
    description: Description | None = None

    @model_validator(mode="after")
    def _title_not_null(self) -> Self:
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be null")
        return self


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    owner_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int
