"""Client text as every supported database can keep and compare it."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# PostgreSQL's text types cannot hold U+0000 (SQLite's can), and a NUL in any
# parameter fails the whole statement. Every client string that is stored or
# looked up is refused with a 422 when it carries one, on either database,
# and the pattern says so in the OpenAPI schema.
NUL_FREE = r"^[^\x00]*$"

StoredText = Annotated[str, StringConstraints(pattern=NUL_FREE)]
