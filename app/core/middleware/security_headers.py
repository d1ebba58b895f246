"""Browser hardening headers on every response.

API answers are data, never pages: the default policy lets a browser load
nothing from them and frame none of them. A route that serves a real page
(Swagger UI at /docs) sends its own Content-Security-Policy, which is kept.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# Two years; sent in production only, where TLS is terminated in front of the app.
HSTS = "max-age=63072000; includeSubDomains"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        defaults = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": API_CSP,
            "Cross-Origin-Opener-Policy": "same-origin",
        }
        if hsts:
            defaults["Strict-Transport-Security"] = HSTS
        self.defaults = tuple(defaults.items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.defaults:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_hardened)
