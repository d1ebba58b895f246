"""The permission catalogue: what features declare, and what (role, permission row) pairs grant."""

from __future__ import annotations

import pytest

from app.api.permissions import CATALOGUE
from app.audit.permissions import AuditPermission
from app.core.authz import ADMIN_ROLE, Permission, PermissionCatalogue
from app.items.permissions import ItemsPermission


class BooksPermission(Permission):
    READ = "books:read"
    WRITE = "books:write"


def test_the_catalogue_holds_each_features_permissions() -> None:
    assert {*ItemsPermission, *AuditPermission} <= CATALOGUE.everything
    assert len(CATALOGUE) == len(CATALOGUE.everything)
    assert list(CATALOGUE) == sorted(CATALOGUE.everything)
    assert "items:read" in CATALOGUE
    assert "items:nuke" not in CATALOGUE


def test_admin_grants_the_whole_catalogue_without_a_single_row() -> None:
    catalogue = PermissionCatalogue(ItemsPermission, BooksPermission)

    assert catalogue.granted_by([(ADMIN_ROLE, None)]) == {*ItemsPermission, *BooksPermission}
    assert catalogue.granted_by([("member", "items:read"), (ADMIN_ROLE, None)]) == set(catalogue)


def test_a_feature_added_to_the_catalogue_is_admins_at_once() -> None:
    before = PermissionCatalogue(ItemsPermission)
    after = PermissionCatalogue(ItemsPermission, BooksPermission)

    assert BooksPermission.READ not in before.granted_by([(ADMIN_ROLE, None)])
    assert BooksPermission.READ in after.granted_by([(ADMIN_ROLE, None)])


def test_other_roles_grant_their_rows_and_nothing_the_catalogue_does_not_declare() -> None:
    rows = [("member", "items:read"), ("member", "items:nuke"), ("support", None), (None, None)]

    granted = CATALOGUE.granted_by(rows)

    assert granted == {ItemsPermission.READ}
    assert all(isinstance(permission, ItemsPermission) for permission in granted)


def test_unknown_names_what_the_catalogue_does_not_declare() -> None:
    assert CATALOGUE.unknown(["items:read", "items:nuke", "*", "items:nuke"]) == ["*", "items:nuke"]
    assert CATALOGUE.unknown(list(CATALOGUE)) == []


def test_a_permission_declared_twice_is_refused() -> None:
    class Borrowed(Permission):
        READ = "items:read"

    with pytest.raises(ValueError, match="declared twice"):
        PermissionCatalogue(ItemsPermission, Borrowed)


class NoAction(Permission):
    BOOKS = "books"


class Capitals(Permission):
    READ = "Books:read"


class Wildcard(Permission):
    EVERYTHING = "books:*"


class TwoActions(Permission):
    READ_ALL = "books:read:all"


@pytest.mark.parametrize("feature", [NoAction, Capitals, Wildcard, TwoActions])
def test_a_permission_not_shaped_resource_action_is_refused(feature: type[Permission]) -> None:
    with pytest.raises(ValueError, match="resource:action"):
        PermissionCatalogue(feature)
