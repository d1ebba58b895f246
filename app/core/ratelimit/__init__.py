"""Rate limits shared by every replica: named rules, their storage, and the limiter."""

from app.core.ratelimit.clients import client_key
from app.core.ratelimit.limiter import Decision, RateLimiter
from app.core.ratelimit.rules import KeyedBy, LimitName, Rule, rules_from

__all__ = [
    "Decision",
    "KeyedBy",
    "LimitName",
    "RateLimiter",
    "Rule",
    "client_key",
    "rules_from",
]
