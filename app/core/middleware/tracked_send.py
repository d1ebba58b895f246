"""`send`, remembering whether the response has begun.

A middleware that answers an error itself may only do so before the first
response message: after that the status line is gone, and all that is left
is to let the server cut the connection.
"""

from __future__ import annotations

from starlette.types import Message, Send


class TrackedSend:
    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
