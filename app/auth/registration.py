"""Signing up: a new member account, when registration is open."""

from __future__ import annotations

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.context import RequestContext
from app.core.errors import Conflict, Forbidden
from app.core.resources import Resources
from app.rbac.grants import MEMBER_ROLE
from app.users.accounts import Accounts
from app.users.schemas import UserCreate, UserRead

log = structlog.get_logger(__name__)

_TAKEN = "An account with this email already exists."


class RegistrationService:
    def __init__(
        self, session: AsyncSession, resources: Resources, context: RequestContext
    ) -> None:
        self.session = session
        self.settings = resources.settings
        self.accounts = Accounts(session, resources, context)

    async def register(self, data: UserCreate) -> UserRead:
        if not self.settings.open_registration:
            raise Forbidden("Registration is closed; ask an administrator for an account.")
        if await self.accounts.find_by_email(data.email) is not None:
            raise Conflict(_TAKEN)
        try:
            user = await self.accounts.create(
                data.email, data.password, data.full_name, roles=[MEMBER_ROLE]
            )
            await self.session.commit()
        except IntegrityError as exc:
            # Lost a race with a concurrent registration of the same email.
            await self.session.rollback()
            raise Conflict(_TAKEN) from exc
        log.info("user.registered", user_id=str(user.id))
        return await self.accounts.read(user)
