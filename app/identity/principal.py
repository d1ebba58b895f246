"""The principal behind a bearer token, read fresh on every request so revocation is immediate."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.authz import PermissionCatalogue, Principal
from app.core.security.tokens import AccessClaims
from app.db.reads import as_tuples, read
from app.identity.models import LoginSession, Role, RolePermission, User, UserRole


def _principal_statement() -> Select[str | None, str | None]:
    """The user, its live login session and every (role, permission) it holds, in one query.

    Built once, over the tables rather than the mapped classes: the request
    pays neither for building the expression nor for the ORM's handling of
    a statement that loads no objects. Outer joins: an account without roles
    still has a row, its role None.
    """
    sessions, users = LoginSession.__table__.c, User.__table__.c
    user_roles, roles = UserRole.__table__.c, Role.__table__.c
    grants = RolePermission.__table__.c
    return (
        select(roles.name, grants.permission)
        .select_from(LoginSession.__table__)
        .join(User.__table__, users.id == sessions.user_id)
        .outerjoin(UserRole.__table__, user_roles.user_id == users.id)
        .outerjoin(Role.__table__, roles.id == user_roles.role_id)
        .outerjoin(RolePermission.__table__, grants.role_id == roles.id)
        .where(
            sessions.id == bindparam("session_id"),
            sessions.user_id == bindparam("user_id"),
            sessions.revoked_at.is_(None),
            sessions.expires_at > bindparam("now"),
            users.is_active.is_(True),
        )
    )


_PRINCIPAL = _principal_statement()


async def resolve_principal(
    session: AsyncSession, claims: AccessClaims, now: datetime, catalogue: PermissionCatalogue
) -> Principal | None:
    """Who the claims name, if the account is active and the login session live; else None.

    One query (see `_principal_statement`). A signed token outlives a logout,
    a deactivation or a changed role; this read is what makes each of those
    count on the next request.
    """
    rows: list[tuple[str | None, str | None]] = await read(
        session,
        _PRINCIPAL,
        {"session_id": claims.session_id, "user_id": claims.subject, "now": now},
        as_tuples,
    )
    if not rows:
        return None
    return Principal(
        user_id=claims.subject,
        session_id=claims.session_id,
        roles=frozenset(role for role, _ in rows if role is not None),
        permissions=catalogue.granted_by(rows),
    )
