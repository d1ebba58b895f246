"""Response headers as ASGI carries them: a list of (lower-case name, value) byte pairs.

The edge layer writes every header it adds in one pass over this list,
instead of one `MutableHeaders` view (and one scan) per header.
"""

from __future__ import annotations

RawHeaders = tuple[tuple[bytes, bytes], ...]


def set_header(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """Replace every `name` header with one holding `value`."""
    headers[:] = [pair for pair in headers if pair[0] != name]
    headers.append((name, value))


def add_missing(
    headers: list[tuple[bytes, bytes]], defaults: RawHeaders, names: frozenset[bytes]
) -> None:
    """Append each default whose name the response does not set itself.

    `names` are the defaults' names. Most answers set none of them: that is
    told in one pass in C, and the defaults go on whole.
    """
    if names.isdisjoint(dict(headers)):
        headers.extend(defaults)
    else:
        present = {name for name, _ in headers}
        headers.extend([pair for pair in defaults if pair[0] not in present])


def values_of(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]
