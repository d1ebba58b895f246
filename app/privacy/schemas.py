from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.users.schemas import UserRead


class UserExport(BaseModel):
    """Everything held about one person, in one document."""

    profile: UserRead
    items: list[dict[str, Any]]
    audit_events: list[dict[str, Any]]
    exported_at: datetime
