from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import Position
from app.db.pagination import keyset_page
from app.identity.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_for_update(self, user_id: uuid.UUID) -> User | None:
        """The user, its row locked until the transaction ends (a no-op on SQLite).

        `FOR NO KEY UPDATE`: rows that merely point at the user (its items,
        sessions) can still be written meanwhile.
        """
        statement = (
            select(User)
            .where(User.id == user_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        result: User | None = await self.session.scalar(statement)
        return result

    async def get_by_email(self, email: str) -> User | None:
        result: User | None = await self.session.scalar(select(User).where(User.email == email))
        return result

    async def list_page(
        self, *, after: Position | None, limit: int
    ) -> tuple[Sequence[User], Position | None]:
        return await keyset_page(self.session, select(User), User, after=after, limit=limit)

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def update(self, user: User, **changes: object) -> None:
        for column, value in changes.items():
            setattr(user, column, value)
        await self.session.flush()

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()
