"""Refuse requests whose Host header names a host this server does not serve.

Starlette's TrustedHostMiddleware answers such a request with a text/plain
400; every error of this API is problem+json, so the check is done here.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response

from app.core.errors import InvalidRequest, problem_response

# Probes and scrapers address a replica by its IP, not by the public name.
_ALWAYS_SERVED = ("/health/", "/metrics")


class TrustedHosts:
    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        hosts = [host.strip().lower() for host in allowed_hosts if host.strip()]
        self.any_host = "*" in hosts
        self.exact = frozenset(host for host in hosts if not host.startswith("*."))
        # "*.example.com" serves every subdomain of example.com, not the apex.
        self.suffixes = tuple(host[1:] for host in hosts if host.startswith("*."))

    def allows(self, host: str) -> bool:
        return host in self.exact or host.endswith(self.suffixes)

    def serves(self, path: str, host_header: bytes | None) -> bool:
        if self.any_host:
            return True
        host = _hostname(host_header.decode("latin-1") if host_header else "")
        return self.allows(host) or path.startswith(_ALWAYS_SERVED)


def wrong_host(path: str) -> Response:
    return problem_response(
        status=400,
        slug=InvalidRequest.slug,
        title=InvalidRequest.title,
        detail="The Host header names a host this server does not serve.",
        instance=path,
    )


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
