from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit.permissions import AuditPermission
from app.audit.schemas import AuditAction, AuditEventRead
from app.audit.service import AuditService
from app.core.authz import Principal
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from app.web.deps import ResourcesDep, SessionDep, require
from app.web.responses import AUTHENTICATED, VALIDATED, problems

router = APIRouter(prefix="/audit-events", tags=["audit"])


async def get_audit_service(session: SessionDep, resources: ResourcesDep) -> AuditService:
    return AuditService(session, resources.cursors)


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
Auditor = Annotated[Principal, Depends(require(AuditPermission.READ))]


@router.get("", responses=problems(*AUTHENTICATED, *VALIDATED, 400))
async def list_audit_events(
    _: Auditor,
    service: AuditServiceDep,
    action: Annotated[AuditAction | None, Query()] = None,
    actor_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[AuditEventRead]:
    """The audit trail, newest first, filterable by action and actor."""
    return await service.list_page(
        action=action.value if action else None,
        actor_id=actor_id,
        cursor=cursor,
        limit=limit,
    )
