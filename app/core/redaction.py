"""A last line of defence that keeps secrets out of log lines.

Code should never log a secret in the first place; this catches the mistake
when it happens. Values under a sensitive key are replaced whole; any string,
at any depth (exception messages and tracebacks included), loses bearer
tokens, JWTs and the literal values of the configured secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from structlog.types import EventDict

from app.core.config import Settings

REDACTED = "[redacted]"

_SENSITIVE_KEY = re.compile(
    r"password|passwd|secret|token|authorization|cookie|api[_-]?key|credential|session_key",
    re.IGNORECASE,
)
_PATTERNS = (
    r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",  # a JWT
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]+",
)
# What a match of each pattern above must contain (the second in lower case).
_JWT_START = "eyJ"
_BEARER = "bearer"
# Shorter values would blank out ordinary words.
_MIN_SECRET_LENGTH = 6


def configured_secrets(settings: Settings) -> list[str]:
    """Every SecretStr setting (or list of them), and the password inside any URL setting."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, list) and all(isinstance(item, SecretStr) for item in value):
            found.extend(item.get_secret_value() for item in value)
        elif isinstance(value, str) and name.endswith("_url") and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password:
                found.append(password)
    return found


class Redactor:
    """A structlog processor; build one per logging configuration."""

    def __init__(self, secrets: Iterable[str]) -> None:
        literals = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        self._values = re.compile("|".join([*_PATTERNS, *map(re.escape, literals)]))
        self._literals = tuple(literals)

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        if self._clean_already(event_dict):
            return event_dict
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def _clean_already(self, event_dict: EventDict) -> bool:
        """True when `_clean` would change nothing: the common line, checked in one search.

        Every string long enough to hold a secret is searched at once, joined by
        NUL, which no pattern matches: a match inside any one string is found in
        the joined text, and no match can span two of them. Runs on every line,
        so the common types are told apart by identity before any isinstance.
        """
        texts: list[str] = []
        for key, value in event_dict.items():
            if value is None:
                continue
            if key not in _plain_keys and not _is_plain(key):
                return False
            kind = type(value)
            if kind is str:
                if len(value) >= _MIN_SECRET_LENGTH:
                    texts.append(value)
            elif kind is int or kind is float or kind is bool:
                continue
            elif isinstance(value, str):
                if len(value) >= _MIN_SECRET_LENGTH:
                    texts.append(value)
            elif not isinstance(value, bool | int | float):
                # Containers are cleaned at every depth; anything else is left as is.
                return False
        joined = "\0".join(texts)
        return not self._may_match(joined) or self._values.search(joined) is None

    def _may_match(self, text: str) -> bool:
        """False when no pattern can match: what each needs, found by plain substring search.

        The regular expression tries every alternative at every position; these
        tests run in C and rule out the common line in a fraction of its time.
        """
        if _JWT_START in text or _BEARER in text.lower():
            return True
        for literal in self._literals:  # noqa: SIM110 - cheaper than any() over a generator
            if literal in text:
                return True
        return False

    def _clean(self, key: object, value: Any) -> Any:
        if key not in _plain_keys and not _is_plain(key):
            return REDACTED if value is not None else None
        if isinstance(value, str):
            # Shorter than any secret it looks for: most values ("GET", an id).
            if len(value) < _MIN_SECRET_LENGTH:
                return value
            return self._values.sub(REDACTED, value)
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(None, item) for item in value]
        return value


def _is_sensitive(key: str) -> bool:
    return key != "event" and _SENSITIVE_KEY.search(key) is not None


# Every log line repeats the same few keys: each is decided once. Keys come
# from code, not input; the bound only guards against a caller that makes them.
_plain_keys: set[object] = set()
_PLAIN_KEYS_KEPT = 4096


def _is_plain(key: object) -> bool:
    plain = not (isinstance(key, str) and _is_sensitive(key))
    if plain and len(_plain_keys) < _PLAIN_KEYS_KEPT:
        _plain_keys.add(key)
    return plain
