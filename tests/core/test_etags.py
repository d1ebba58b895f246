"""ETags and conditional requests: If-Match strong, If-None-Match weak, quotes optional."""

from __future__ import annotations

import uuid

import pytest

from app.core.etags import is_current_copy, is_stale_edit, make_etag

ETAG = make_etag("3f2c", 7)
OTHER = make_etag("3f2c", 8)


def test_make_etag_is_a_quoted_strong_tag() -> None:
    tag = make_etag("abc", 3)

    assert tag.startswith('"')
    assert tag.endswith('"')
    assert not tag.startswith("W/")
    assert tag.count('"') == 2


def test_make_etag_changes_with_every_part() -> None:
    item_id = uuid.uuid4()

    assert make_etag(item_id, 1) == make_etag(item_id, 1)
    assert make_etag(item_id, 1) != make_etag(item_id, 2)
    assert make_etag(item_id, 1) != make_etag(uuid.uuid4(), 1)


@pytest.mark.parametrize(
    "if_match",
    [None, ETAG, "*", f"{OTHER}, {ETAG}", f"{ETAG},{OTHER}", f'"zzz" ,  {ETAG} ', ETAG.strip('"')],
    ids=["absent", "same", "star", "list-last", "list-first-no-space", "list-padded", "unquoted"],
)
def test_if_match_with_the_current_tag_is_not_a_stale_edit(if_match: str | None) -> None:
    assert is_stale_edit(if_match, ETAG) is False


@pytest.mark.parametrize(
    "if_match",
    [OTHER, f"W/{ETAG}", f"W/{ETAG}, {OTHER}", '"zzz", "yyy"', OTHER.strip('"')],
    ids=["stale", "weak-same", "weak-in-list", "list-without", "unquoted-stale"],
)
def test_if_match_with_a_stale_or_weak_tag_is_a_stale_edit(if_match: str) -> None:
    assert is_stale_edit(if_match, ETAG) is True


@pytest.mark.parametrize(
    "if_none_match",
    [ETAG, f"W/{ETAG}", "*", f"{OTHER}, {ETAG}", f'"zzz", W/{ETAG}', ETAG.strip('"')],
    ids=["same", "weak-same", "star", "list", "weak-in-list", "unquoted"],
)
def test_if_none_match_reports_a_current_copy(if_none_match: str) -> None:
    assert is_current_copy(if_none_match, ETAG) is True


@pytest.mark.parametrize(
    "if_none_match",
    [None, OTHER, f"W/{OTHER}", '"zzz", "yyy"'],
    ids=["absent", "stale", "weak-stale", "list-without"],
)
def test_if_none_match_asks_for_a_fresh_copy(if_none_match: str | None) -> None:
    assert is_current_copy(if_none_match, ETAG) is False


def test_if_none_match_compares_weak_server_tags_too() -> None:
    weak = f"W/{ETAG}"

    assert is_current_copy(ETAG, weak) is True
    assert is_current_copy(weak, weak) is True
    assert is_current_copy(OTHER, weak) is False
