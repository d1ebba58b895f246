from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.core.authz import Principal
from app.core.errors import NotFound, PreconditionFailed
from app.core.etags import is_stale_edit, make_etag
from app.core.pagination import Page
from app.core.resources import Resources
from app.idempotency.models import IdempotencyRecord
from app.idempotency.service import IdempotencyKeys, StoredResponse, fingerprint
from app.items.models import Item
from app.items.repository import ItemRepository
from app.items.schemas import ItemCreate, ItemRead, ItemUpdate

log = structlog.get_logger(__name__)

IDEMPOTENCY_SCOPE = "items.create"
_PAGE = Page[ItemRead]


def item_etag(item: ItemRead) -> str:
    return make_etag(item.id.hex, item.version)


@dataclass(frozen=True, slots=True)
class Created:
    item: ItemRead
    replayed: bool


class ItemService:
    """The item use cases; each that writes commits before it returns."""

    def __init__(self, session: AsyncSession, resources: Resources) -> None:
        self.session = session
        self.resources = resources
        self.items = ItemRepository(session)
        self.cursors = resources.cursors

    # Built on first use: only a create with an Idempotency-Key needs it.
    @cached_property
    def idempotency(self) -> IdempotencyKeys:
        return IdempotencyKeys(
            self.session, ttl_seconds=self.resources.settings.idempotency_ttl_seconds
        )

    async def create(
        self, principal: Principal, data: ItemCreate, *, idempotency_key: str | None = None
    ) -> Created:
        claim: IdempotencyRecord | None = None
        if idempotency_key is not None:
            outcome = await self.idempotency.claim(
                owner_id=principal.user_id,
                scope=IDEMPOTENCY_SCOPE,
                key=idempotency_key,
                request_hash=fingerprint(data.model_dump(mode="json")),
            )
            if isinstance(outcome, StoredResponse):
                await self.session.rollback()
                return Created(ItemRead.model_validate(outcome.body), replayed=True)
            claim = outcome

        item = await self.items.add(
            Item(owner_id=principal.user_id, title=data.title, description=data.description)
        )
        read = ItemRead.model_validate(item)
        if claim is not None:
            await self.idempotency.complete(claim, status=201, body=read.model_dump(mode="json"))
        await self.session.commit()
        log.info("item.created", item_id=str(item.id))
        return Created(read, replayed=False)

    async def list_page(
        self, principal: Principal, *, cursor: str | None, limit: int
    ) -> Page[ItemRead]:
        after = self.cursors.decode(cursor) if cursor else None
        rows, next_position = await self.items.list_readable(principal, after=after, limit=limit)
        # One validation for the whole page: about a third of one per row.
        return _PAGE.model_validate(
            {
                "items": rows,
                "next_cursor": self.cursors.encode(next_position) if next_position else None,
            }
        )

    async def owned_by(self, user_id: uuid.UUID) -> list[ItemRead]:
        """Every item of one user, for their data export."""
        return [ItemRead.model_validate(item) for item in await self.items.owned_by(user_id)]

    async def get(self, principal: Principal, item_id: uuid.UUID) -> ItemRead:
        item = await self.items.get_readable(principal, item_id)
        if item is None:
            raise NotFound("No such item.")
        return ItemRead.model_validate(item)

    async def update(
        self, principal: Principal, item_id: uuid.UUID, data: ItemUpdate, *, if_match: str | None
    ) -> ItemRead:
        item = await self._writable(principal, item_id, if_match=if_match)
        try:
            await self.items.update(item, data.model_dump(exclude_unset=True))
        except StaleDataError as exc:
            # Someone else's update landed between our read and our write.
            raise PreconditionFailed("The item changed while it was being updated.") from exc
        read = ItemRead.model_validate(item)
        await self.session.commit()
        log.info("item.updated", item_id=str(item.id), version=read.version)
        return read

    async def delete(
        self, principal: Principal, item_id: uuid.UUID, *, if_match: str | None
    ) -> None:
        item = await self._writable(principal, item_id, if_match=if_match)
        await self.items.delete(item)
        await self.session.commit()
        log.info("item.deleted", item_id=str(item_id))

    async def _writable(
        self, principal: Principal, item_id: uuid.UUID, *, if_match: str | None
    ) -> Item:
        item = await self.items.get_writable(principal, item_id)
        if item is None:
            raise NotFound("No such item.")
        if is_stale_edit(if_match, item_etag(ItemRead.model_validate(item))):
            raise PreconditionFailed("The item has changed since it was read; fetch it again.")
        return item
