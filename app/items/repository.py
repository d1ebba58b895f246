from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.authz import Principal
from app.core.pagination import Position
from app.db.pagination import KeysetStatements
from app.items.models import Item
from app.items.permissions import ItemsPermission

_ITEMS = Item.__table__.c
# The listing every client polls, built once: the caller's own items, and
# everyone's for a principal with `items:read_any`.
_OWN_PAGES = KeysetStatements(
    select(Item.__table__).where(_ITEMS.owner_id == bindparam("owner_id")),
    _ITEMS.created_at,
    _ITEMS.id,
)
_ALL_PAGES = KeysetStatements(select(Item.__table__), _ITEMS.created_at, _ITEMS.id)


class ItemRepository:
    """Every query here starts from what the principal may see.

    Another user's item is not filtered out after loading: it is never
    selected, so no code path can return it by accident.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _visible_to(principal: Principal, *, widen_with: ItemsPermission) -> Select[Item]:
        statement = select(Item)
        if not principal.can(widen_with):
            statement = statement.where(Item.owner_id == principal.user_id)
        return statement

    async def get_readable(self, principal: Principal, item_id: uuid.UUID) -> Item | None:
        statement = self._visible_to(principal, widen_with=ItemsPermission.READ_ANY)
        result: Item | None = await self.session.scalar(statement.where(Item.id == item_id))
        return result

    async def get_writable(self, principal: Principal, item_id: uuid.UUID) -> Item | None:
        statement = self._visible_to(principal, widen_with=ItemsPermission.WRITE_ANY)
        result: Item | None = await self.session.scalar(statement.where(Item.id == item_id))
        return result

    async def list_readable(
        self, principal: Principal, *, after: Position | None, limit: int
    ) -> tuple[list[dict[str, Any]], Position | None]:
        """A page of the item rows the principal may read (plain dicts: read, never changed)."""
        if principal.can(ItemsPermission.READ_ANY):
            return await _ALL_PAGES.page(self.session, {}, after=after, limit=limit)
        owner = {"owner_id": principal.user_id}
        return await _OWN_PAGES.page(self.session, owner, after=after, limit=limit)

    async def owned_by(self, owner_id: uuid.UUID) -> Sequence[Item]:
        statement = (
            select(Item)
            .where(Item.owner_id == owner_id)
            .order_by(Item.created_at.desc(), Item.id.desc())
        )
        return (await self.session.scalars(statement)).all()

    async def add(self, item: Item) -> Item:
        self.session.add(item)
        await self.session.flush()
        return item

    async def update(self, item: Item, changes: dict[str, object]) -> None:
        """Write `changes`; StaleDataError when another update landed since the item was read.

        The version column is in the UPDATE's WHERE clause (version_id_col),
        so a concurrent write is detected by the database, not by a re-read.
        """
        for column, value in changes.items():
            setattr(item, column, value)
        await self.session.flush()

    async def delete(self, item: Item) -> None:
        await self.session.delete(item)
        await self.session.flush()
