"""A person's data, all of it: exported in one document, or erased in one transaction.

The one place that knows every feature holding data about a person. A new
resource owned by users is added to the export here, and to the erasure
either here or by a cascading foreign key to `users.id`.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.schemas import AuditAction
from app.core.authz import Principal
from app.core.context import RequestContext
from app.core.resources import Resources
from app.db.types import utcnow
from app.items.service import ItemService
from app.privacy.schemas import UserExport
from app.users.accounts import TARGET, Accounts

log = structlog.get_logger(__name__)


class PersonalDataService:
    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.resources = resources
        self.accounts = Accounts(session, resources, context)

    async def export(self, principal: Principal) -> UserExport:
        user = await self.accounts.get(principal.user_id)
        items = await ItemService(self.session, self.resources).owned_by(user.id)
        audit = self.accounts.audit
        audit.record(AuditAction.EXPORTED, actor_id=user.id, target_type=TARGET, target_id=user.id)
        # The export lists its own event.
        await audit.flush()
        events = await audit.for_subject(user.id)
        document = UserExport(
            profile=await self.accounts.read(user),
            items=[item.model_dump(mode="json") for item in items],
            audit_events=[event.model_dump(mode="json") for event in events],
            exported_at=utcnow(),
        )
        await self.session.commit()
        return document

    async def erase(self, actor: Principal, user_id: uuid.UUID) -> None:
        """The account, its items and login sessions go in one transaction (by cascade).

        Audit events about the person stay for the record, without what could
        identify them.
        """
        # The user's row before the admin role's, in the same order as an admin update.
        user = await self.accounts.get(user_id, lock=True)
        await self.accounts.ensure_not_last_admin(user.id)
        await self.accounts.audit.scrub_user(user.id)
        await self.accounts.delete(user)
        erasing_self = actor.user_id == user_id
        self.accounts.audit.record(
            AuditAction.DELETED,
            actor_id=None if erasing_self else actor.user_id,
            target_type=TARGET,
            target_id=user_id,
            # The request came from the person being forgotten.
            with_origin=not erasing_self,
        )
        await self.session.commit()
        log.info("user.deleted", user_id=str(user_id))
