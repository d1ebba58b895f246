from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, Timestamps, UUIDPrimaryKey

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 5000


class Item(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "items"
    __table_args__ = (
        # Serve "my items, newest first" and "everyone's, newest first" as
        # index range scans for keyset pagination.
        Index("ix_items_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_items_created_at_id", "created_at", "id"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    # Bumped by SQLAlchemy on every UPDATE, which also guards it with
    # `WHERE version = <read value>`: a lost update becomes StaleDataError.
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
