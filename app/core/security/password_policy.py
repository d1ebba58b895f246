"""What a new password must be: long enough, not absurdly long, not a known one.

Length is checked before any hashing, so a megabyte "password" is refused in
microseconds instead of burning the hashing pool.
"""

from __future__ import annotations

from importlib import resources

from app.core.errors import Unprocessable

MIN_LENGTH = 8
MAX_LENGTH = 128


def _load_common_passwords() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


_COMMON_PASSWORDS = _load_common_passwords()


def check_new_password(password: str, *, email: str | None = None) -> str:
    """Return the password if acceptable; raise ValueError saying why not."""
    check_strength(password)
    if email is not None:
        check_not_email(password, email)
    return password


def check_strength(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"password must be at most {MAX_LENGTH} characters")
    if password.lower() in _COMMON_PASSWORDS:
        raise ValueError("password is too common")
    return password


def check_not_email(password: str, email: str) -> str:
    if password.lower() in {email.lower(), email.split("@", 1)[0].lower()}:
        raise ValueError("password must not be the email address")
    return password


def ensure_new_password(password: str, *, email: str) -> None:
    """The same rules, for services: a refusal is a 422 problem, not a crash."""
    try:
        check_new_password(password, email=email)
    except ValueError as exc:
        raise Unprocessable(str(exc).capitalize() + ".") from exc
