"""`Connection: close` on every answer while the server drains.

A client on a kept-alive connection would otherwise go on sending to a
replica that is about to close its listener; told to close, it opens its
next connection through the load balancer, which by then sends it to a
replica that stays.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.resources import resources_of_app


class CloseWhileDrainingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Read when the answer starts: a request that began before the drain
        # and ends during it must close its connection too.
        resources = resources_of_app(scope.get("app"))

        async def send_closing(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and resources is not None
                and resources.shutting_down
            ):
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, receive, send_closing)
