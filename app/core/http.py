"""Entity tags and conditional-request checks (RFC 9110 §8.8.3, §13)."""

from __future__ import annotations


def make_etag(*parts: object) -> str:
    return '"' + "-".join(str(part) for part in parts) + '"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(if_none_match: str | None, etag: str) -> bool:
    """False when the client's copy is current (answer 304); weak comparison."""
    if if_none_match is None:
        return True
    tags = _tags(if_none_match)
    if "*" in tags:
        return False
    return _opaque(etag) not in {_opaque(tag) for tag in tags}


def match(if_match: str | None, etag: str) -> bool:
    """False when the client edits a stale copy (answer 412); strong comparison."""
    if if_match is None:
        return True
    tags = _tags(if_match)
    return "*" in tags or etag in tags
