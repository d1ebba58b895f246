"""What a set of (role, permission row) pairs grants."""

from __future__ import annotations

from app.core.authz import ADMIN_ROLE, EVERY_PERMISSION, Permission, granted_by


def test_admin_grants_the_whole_catalogue_without_a_single_row() -> None:
    assert granted_by([(ADMIN_ROLE, None)]) == EVERY_PERMISSION
    assert granted_by([("member", "items:read"), (ADMIN_ROLE, None)]) == EVERY_PERMISSION


def test_other_roles_grant_their_rows_and_nothing_dropped_from_the_catalogue() -> None:
    rows = [("member", "items:read"), ("member", "items:nuke"), ("support", None), (None, None)]

    assert granted_by(rows) == {Permission.ITEMS_READ}
