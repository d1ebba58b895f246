"""OpenAPI descriptions of the problem answers an operation can give."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from app.core.errors import Problem, ValidationProblem

# Any operation can crash; listed once here.
_ALWAYS = (500,)
AUTHENTICATED = (401, 403)
VALIDATED = (422,)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these statuses, each documented as a problem."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, *_ALWAYS}):
        documented[status] = {
            "model": ValidationProblem if status == 422 else Problem,
            "description": HTTPStatus(status).phrase,
        }
    return documented
