"""Users, items and roles written through the app's repositories: no HTTP, no hashing.

Each factory commits on its own session, so what it made is there for the
request a test sends next. Passwords are the hash of PASSWORD made once per
run (the `password_hash` fixture); registering and logging in over HTTP are
tested end to end in tests/auth/.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from app.auth.schemas import TokenPair
from app.auth.tokens import login_sessions_of, token_pair
from app.core.resources import Resources
from app.identity.models import Role, User
from app.items.models import Item
from app.items.repository import ItemRepository
from app.rbac.grants import MEMBER_ROLE, RoleGrants
from app.rbac.repository import RoleRepository
from app.users.repository import UserRepository
from tests.helpers import PASSWORD, bearer


@dataclass(frozen=True)
class Account:
    """A user with a live login session: `token` is its access token."""

    id: uuid.UUID
    email: str
    password: str
    token: str
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def new_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def create_user(
    resources: Resources,
    password_hash: str,
    email: str | None = None,
    *,
    roles: Iterable[str] = (),
    full_name: str | None = None,
    is_active: bool = True,
) -> User:
    """A user holding `member` and `roles`, whose password is the one `password_hash` hashes."""
    async with resources.sessionmaker() as session:
        user = await UserRepository(session).add(
            User(
                email=(email or new_email()).lower(),
                full_name=full_name,
                password_hash=password_hash,
                is_active=is_active,
            )
        )
        grants = RoleGrants(session, resources.permissions)
        for role in dict.fromkeys((MEMBER_ROLE, *roles)):
            await grants.assign_role(user.id, role)
        await session.commit()
    return user


async def sign_in(resources: Resources, user_id: uuid.UUID) -> TokenPair:
    """Start a login session for the user as a login would; its tokens."""
    async with resources.sessionmaker() as session:
        issued = await login_sessions_of(session, resources).start(user_id, resources.clock.now())
        await session.commit()
    return token_pair(resources, issued)


async def create_account(
    resources: Resources,
    password_hash: str,
    email: str | None = None,
    *,
    roles: Iterable[str] = (),
) -> Account:
    """A signed-in user: `create_user` and `sign_in` in one."""
    user = await create_user(resources, password_hash, email, roles=roles)
    pair = await sign_in(resources, user.id)
    return Account(user.id, user.email, PASSWORD, pair.access_token, pair.refresh_token)


async def create_item(
    resources: Resources,
    owner_id: uuid.UUID,
    title: str | None = None,
    *,
    description: str | None = None,
) -> Item:
    async with resources.sessionmaker() as session:
        item = await ItemRepository(session).add(
            Item(
                owner_id=owner_id,
                title=title or f"item {uuid.uuid4().hex[:8]}",
                description=description,
            )
        )
        await session.commit()
    return item


async def create_role(
    resources: Resources, name: str | None = None, permissions: Iterable[str] = ()
) -> Role:
    """A role granting `permissions` (their string values, e.g. "items:read")."""
    async with resources.sessionmaker() as session:
        repository = RoleRepository(session)
        role = await repository.add(Role(name=name or f"role_{uuid.uuid4().hex[:8]}"))
        await repository.set_permissions(role, [str(p) for p in permissions])
        await session.commit()
    return role
