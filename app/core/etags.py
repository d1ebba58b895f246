"""Entity tags and the two conditional-request questions (RFC 9110 §8.8.3, §13)."""

from __future__ import annotations


def make_etag(*parts: object) -> str:
    return '"' + "-".join(str(part) for part in parts) + '"'


def _tags(header: str) -> list[str]:
    return [_quoted(tag.strip()) for tag in header.split(",") if tag.strip()]


def _quoted(tag: str) -> str:
    # A tag typed in a shell often loses its quotes (`If-Match: 3f2c-7`);
    # it still names one tag, so it is read as the quoted form.
    if tag == "*" or tag.endswith('"'):
        return tag
    weak = tag.startswith("W/")
    body = tag[2:] if weak else tag
    return ("W/" if weak else "") + f'"{body}"'


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def is_current_copy(if_none_match: str | None, etag: str) -> bool:
    """True when the client already holds this version (answer 304); weak comparison."""
    if if_none_match is None:
        return False
    tags = _tags(if_none_match)
    if "*" in tags:
        return True
    return _opaque(etag) in {_opaque(tag) for tag in tags}


def is_stale_edit(if_match: str | None, etag: str) -> bool:
    """True when the client edits a version that is no longer current (answer 412).

    Strong comparison: a weak tag never matches. No If-Match, no precondition.
    """
    if if_match is None:
        return False
    tags = _tags(if_match)
    return not ("*" in tags or etag in tags)
