from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from app.core.authz import Principal
from app.core.etags import is_current_copy
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from app.core.resources import resources_of
from app.idempotency.models import KEY_MAX_LENGTH
from app.items.permissions import ItemsPermission
from app.items.schemas import ItemCreate, ItemRead, ItemUpdate
from app.items.service import ItemService, item_etag
from app.web.deps import request_session, require
from app.web.responses import AUTHENTICATED, VALIDATED, problems

router = APIRouter(prefix="/items", tags=["items"])


async def get_item_service(request: Request) -> ItemService:
    return ItemService(request_session(request), resources_of(request))


ItemServiceDep = Annotated[ItemService, Depends(get_item_service)]
Reader = Annotated[Principal, Depends(require(ItemsPermission.READ))]
Writer = Annotated[Principal, Depends(require(ItemsPermission.WRITE))]

_ETAG = {"ETag": {"description": "The item's current version tag.", "schema": {"type": "string"}}}
_LOCATION = {"Location": {"description": "The new item's URL.", "schema": {"type": "string"}}}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": {**_LOCATION, **_ETAG, **_REPLAYED}},
        **problems(*AUTHENTICATED, *VALIDATED, 409),
    },
)
async def create_item(
    data: ItemCreate,
    principal: Writer,
    service: ItemServiceDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=KEY_MAX_LENGTH,
            description="Makes retries safe: the same key and body return the first answer.",
        ),
    ] = None,
) -> ItemRead:
    """Create an item; an Idempotency-Key makes a retry safe."""
    created = await service.create(principal, data, idempotency_key=idempotency_key)
    response.headers["Location"] = request.app.url_path_for("get_item", item_id=created.item.id)
    response.headers["ETag"] = item_etag(created.item)
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return created.item


@router.get("", responses=problems(*AUTHENTICATED, *VALIDATED, 400))
async def list_items(
    principal: Reader,
    service: ItemServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[ItemRead]:
    """The caller's items, newest first; everyone's with `items:read_any`."""
    return await service.list_page(principal, cursor=cursor, limit=limit)


@router.get(
    "/{item_id}",
    name="get_item",
    response_model=ItemRead,
    responses={
        200: {"headers": _ETAG},
        304: {"description": "The copy named by `If-None-Match` is current."},
        **problems(*AUTHENTICATED, *VALIDATED, 404),
    },
)
async def get_item(
    item_id: uuid.UUID,
    principal: Reader,
    service: ItemServiceDep,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> ItemRead | Response:
    """One item, with its ETag."""
    item = await service.get(principal, item_id)
    etag = item_etag(item)
    if is_current_copy(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return item


@router.patch(
    "/{item_id}",
    responses={200: {"headers": _ETAG}, **problems(*AUTHENTICATED, *VALIDATED, 404, 412)},
)
async def update_item(
    item_id: uuid.UUID,
    data: ItemUpdate,
    principal: Writer,
    service: ItemServiceDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> ItemRead:
    """Change an item's title or description; If-Match guards against lost updates."""
    item = await service.update(principal, item_id, data, if_match=if_match)
    response.headers["ETag"] = item_etag(item)
    return item


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(*AUTHENTICATED, *VALIDATED, 404, 412),
)
async def delete_item(
    item_id: uuid.UUID,
    principal: Writer,
    service: ItemServiceDep,
    if_match: Annotated[str | None, Header()] = None,
) -> None:
    """Delete an item."""
    await service.delete(principal, item_id, if_match=if_match)
