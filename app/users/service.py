from __future__ import annotations

import uuid

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.core.security.password_policy import check_new_password
from app.core.security.passwords import PasswordHasher
from app.rbac.service import ADMIN_ROLE, MEMBER_ROLE, RbacService
from app.users.models import User
from app.users.repository import UserRepository
from app.users.schemas import UserCreate, UserRead

log = structlog.get_logger(__name__)


class UserService:
    def __init__(self, session: AsyncSession, hasher: PasswordHasher) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.rbac = RbacService(session)
        self.hasher = hasher

    async def register(self, data: UserCreate) -> UserRead:
        if await self.users.get_by_email(data.email) is not None:
            raise Conflict("An account with this email already exists.")
        user = User(
            email=data.email,
            full_name=data.full_name,
            password_hash=await self.hasher.hash(data.password),
        )
        try:
            await self.users.add(user)
            await self.rbac.assign_role(user.id, MEMBER_ROLE)
            await self.session.commit()
        except IntegrityError as exc:
            # Lost a race with a concurrent registration of the same email.
            await self.session.rollback()
            raise Conflict("An account with this email already exists.") from exc
        log.info("user.registered", user_id=str(user.id))
        return UserRead(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            is_active=user.is_active,
            roles=[MEMBER_ROLE],
            created_at=user.created_at,
        )

    async def read(self, user_id: uuid.UUID) -> UserRead:
        user = await self.users.get(user_id)
        if user is None:
            raise NotFound("No such user.")
        grants = await self.rbac.grants_for(user.id)
        return UserRead(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            is_active=user.is_active,
            roles=sorted(grants.roles),
            created_at=user.created_at,
        )

    async def get_active(self, user_id: uuid.UUID) -> User | None:
        user = await self.users.get(user_id)
        return user if user is not None and user.is_active else None

    async def find_by_email(self, email: str) -> User | None:
        return await self.users.get_by_email(email.lower())

    async def replace_password_hash(self, user: User, password_hash: str) -> None:
        user.password_hash = password_hash
        await self.session.flush()

    async def ensure_admin(self, email: str, password: str) -> bool:
        """Create the first admin unless an account with that email exists; True if created."""
        email = email.lower()
        if await self.users.get_by_email(email) is not None:
            return False
        check_new_password(password, email=email)
        user = User(email=email, password_hash=await self.hasher.hash(password))
        try:
            await self.users.add(user)
            await self.rbac.assign_role(user.id, MEMBER_ROLE)
            await self.rbac.assign_role(user.id, ADMIN_ROLE)
            await self.session.commit()
        except IntegrityError:
            # Another worker created it first: the outcome we wanted.
            await self.session.rollback()
            return False
        log.info("user.admin_created", user_id=str(user.id))
        return True
