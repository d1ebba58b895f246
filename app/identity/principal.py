"""The principal behind a bearer token, read fresh on every request so revocation is immediate."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.authz import PermissionCatalogue, Principal
from app.core.security.tokens import AccessClaims
from app.identity.models import LoginSession, Role, RolePermission, User, UserRole


async def resolve_principal(
    session: AsyncSession, claims: AccessClaims, now: datetime, catalogue: PermissionCatalogue
) -> Principal | None:
    """Who the claims name, if the account is active and the login session live; else None.

    One query: the user, its live login session and every (role, permission)
    it holds. A signed token outlives a logout, a deactivation or a changed
    role; this read is what makes each of those count on the next request.
    """
    statement = (
        select(Role.name, RolePermission.permission)
        .select_from(LoginSession)
        .join(User, User.id == LoginSession.user_id)
        .outerjoin(UserRole, UserRole.user_id == User.id)
        .outerjoin(Role, Role.id == UserRole.role_id)
        .outerjoin(RolePermission, RolePermission.role_id == Role.id)
        .where(
            LoginSession.id == claims.session_id,
            LoginSession.user_id == claims.subject,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
            User.is_active.is_(True),
        )
    )
    # Outer joins: an account without roles still has a row, its role None.
    rows: list[tuple[str | None, str | None]] = [
        (role, permission) for role, permission in await session.execute(statement)
    ]
    if not rows:
        return None
    return Principal(
        user_id=claims.subject,
        session_id=claims.session_id,
        roles=frozenset(role for role, _ in rows if role is not None),
        permissions=catalogue.granted_by(rows),
    )
