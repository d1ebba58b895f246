"""`Connection: close` on every answer while the server drains.

A client on a kept-alive connection would otherwise go on sending to a
replica that is about to close its listener; told to close, it opens its
next connection through the load balancer, which by then sends it to a
replica that stays.
"""

from __future__ import annotations

from app.core.middleware.raw_headers import set_header
from app.core.resources import resources_of_app


def close_if_draining(headers: list[tuple[bytes, bytes]], app: object) -> None:
    """Read when the answer starts: a request that began before the drain must close too."""
    resources = resources_of_app(app)
    if resources is not None and resources.shutting_down:
        set_header(headers, b"connection", b"close")
