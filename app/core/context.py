"""Who is asking, from where: what audit events and security logs record."""

from __future__ import annotations

from dataclasses import dataclass

USER_AGENT_MAX_LENGTH = 512


@dataclass(frozen=True, slots=True)
class RequestContext:
    ip: str | None
    user_agent: str | None
    request_id: str | None

    @classmethod
    def of(cls, ip: str | None, user_agent: str | None, request_id: str | None) -> RequestContext:
        return cls(ip, user_agent[:USER_AGENT_MAX_LENGTH] if user_agent else None, request_id)


# For work not started by a request: the CLI, start-up.
SYSTEM_CONTEXT = RequestContext(ip=None, user_agent=None, request_id=None)
