"""ETags and conditional requests: If-Match compares strongly, If-None-Match weakly."""

from __future__ import annotations

import uuid

import pytest

from app.core.http import make_etag, match, none_match

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
    [None, ETAG, "*", f"{OTHER}, {ETAG}", f"{ETAG},{OTHER}", f'"zzz" ,  {ETAG} '],
    ids=["absent", "same", "star", "list-last", "list-first-no-space", "list-padded"],
)
def test_if_match_allows_the_current_tag(if_match: str | None) -> None:
    assert match(if_match, ETAG) is True


@pytest.mark.parametrize(
    "if_match",
    [OTHER, f"W/{ETAG}", f"W/{ETAG}, {OTHER}", '"zzz", "yyy"'],
    ids=["stale", "weak-same", "weak-in-list", "list-without"],
)
def test_if_match_refuses_stale_or_weak_tags(if_match: str) -> None:
    assert match(if_match, ETAG) is False


@pytest.mark.parametrize(
    "if_none_match",
    [ETAG, f"W/{ETAG}", "*", f"{OTHER}, {ETAG}", f'"zzz", W/{ETAG}'],
    ids=["same", "weak-same", "star", "list", "weak-in-list"],
)
def test_if_none_match_reports_a_current_copy(if_none_match: str) -> None:
    assert none_match(if_none_match, ETAG) is False


@pytest.mark.parametrize(
    "if_none_match",
    [None, OTHER, f"W/{OTHER}", '"zzz", "yyy"'],
    ids=["absent", "stale", "weak-stale", "list-without"],
)
def test_if_none_match_asks_for_a_fresh_copy(if_none_match: str | None) -> None:
    assert none_match(if_none_match, ETAG) is True


def test_if_none_match_compares_weak_server_tags_too() -> None:
    weak = f"W/{ETAG}"

    assert none_match(ETAG, weak) is False
    assert none_match(weak, weak) is False
    assert none_match(OTHER, weak) is True
