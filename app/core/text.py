"""Client text as every supported database can keep and compare it."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# PostgreSQL's text types cannot hold U+0000 (SQLite's can), and a NUL in any
# parameter fails the whole statement. Every client string that is stored or
# looked up is refused with a 422 when it carries one, on either database,
# and the pattern says so in the OpenAPI schema.
NUL_FREE = r"^[^\x00]*$"

# Unicode's White_Space characters, spelt out: `\s` means slightly different
# sets in the server's regex engine and in a client's (ECMAScript), and the
# schema must say exactly what the server checks.
_WHITESPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# NUL-free, with at least one character that is not whitespace.
NOT_BLANK = rf"^[^\x00]*[^\x00{_WHITESPACE}][^\x00]*$"

StoredText = Annotated[str, StringConstraints(pattern=NUL_FREE)]
# A name or a title: stored as sent, but never only whitespace.
StoredName = Annotated[str, StringConstraints(pattern=NOT_BLANK)]
