"""Rate limits shared by every replica: named rules, their storage, and the limiter."""

from app.core.ratelimit.limiter import Decision, RateLimiter
from app.core.ratelimit.rules import KeyedBy, LimitName, Rule, rules_from
from app.core.ratelimit.storage import create_storage

__all__ = [
    "Decision",
    "KeyedBy",
    "LimitName",
    "RateLimiter",
    "Rule",
    "create_storage",
    "rules_from",
]
