"""Every limit the API enforces, in one table: its setting, its strategy and what it counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItem, parse

from app.core.config import RateLimitStrategy, Settings

LOGIN_STRATEGY: RateLimitStrategy = "moving-window"


class LimitName(StrEnum):
    DEFAULT = "default"
    LOGIN = "login"
    REGISTER = "register"
    REFRESH = "refresh"
    PASSWORD_RESET = "password-reset"
    LOGIN_LOCKOUT_ACCOUNT = "login-lockout-account"
    LOGIN_LOCKOUT_CLIENT = "login-lockout-client"


class KeyedBy(StrEnum):
    # The signed-in user when the bearer token is valid, else the client address.
    USER_OR_CLIENT = "user-or-client"
    # The client address, even for a signed-in caller.
    CLIENT = "client"
    # Whatever the calling service passes (an account, for a lockout).
    CALLER = "caller"


@dataclass(frozen=True, slots=True)
class Rule:
    name: LimitName
    item: RateLimitItem
    strategy: RateLimitStrategy
    keyed_by: KeyedBy
    # Guards sign-in, registration or a reset: when the shared storage fails it
    # is counted in the process, never let through uncounted.
    never_skipped: bool = True


def rules_from(settings: Settings) -> Mapping[LimitName, Rule]:
    # Login counts in a moving window, exact rather than the sliding
    # counter's estimate, whatever RATE_LIMIT_STRATEGY says. The lockouts are
    # exact whatever the strategy: they keep a log of attempts of their own
    # (lockout.py); their rows here carry their amounts.
    common, login = settings.rate_limit_strategy, LOGIN_STRATEGY
    table = (
        (LimitName.DEFAULT, settings.rate_limit_default, common, KeyedBy.USER_OR_CLIENT),
        (LimitName.LOGIN, settings.rate_limit_login, login, KeyedBy.CLIENT),
        (LimitName.REGISTER, settings.rate_limit_register, common, KeyedBy.CLIENT),
        (LimitName.REFRESH, settings.rate_limit_refresh, common, KeyedBy.CLIENT),
        (LimitName.PASSWORD_RESET, settings.rate_limit_password_reset, common, KeyedBy.CLIENT),
        (LimitName.LOGIN_LOCKOUT_ACCOUNT, settings.login_lockout_account, login, KeyedBy.CALLER),
        (LimitName.LOGIN_LOCKOUT_CLIENT, settings.login_lockout_client, login, KeyedBy.CALLER),
    )
    return {
        name: Rule(
            name=name,
            item=parse(limit),
            strategy=strategy,
            keyed_by=keyed_by,
            # Only the general limit follows RATE_LIMIT_FAIL_OPEN.
            never_skipped=name is not LimitName.DEFAULT,
        )
        for name, limit, strategy, keyed_by in table
    }
