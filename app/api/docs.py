"""Swagger UI at /docs, served with a Content-Security-Policy of its own.

The page loads its script and stylesheet from cdn.jsdelivr.net and starts
them with one inline script; instead of allowing inline scripts at large,
the policy names that script by its hash, computed from the page actually
served. The schema validator badge is switched off: it would send the
schema's URL to a third party and needs an image source the policy refuses.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_ORIGIN = "https://cdn.jsdelivr.net"
FAVICON_ORIGIN = "https://fastapi.tiangolo.com"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _script_hashes(page: bytes) -> str:
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    )


def _policy(*directives: str) -> str:
    common = ("frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'")
    return "; ".join(("default-src 'none'", *directives, *common))


def install_docs(app: FastAPI) -> None:
    openapi_url = app.openapi_url or "/openapi.json"
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
    ).body
    page = bytes(page)
    page_policy = _policy(
        f"script-src {ASSETS_ORIGIN} {_script_hashes(page)}",
        f"style-src {ASSETS_ORIGIN}",
        f"img-src 'self' data: {FAVICON_ORIGIN}",
        # The schema, and "Authorize" posting the password form to the token route.
        "connect-src 'self'",
    )
    redirect = bytes(get_swagger_ui_oauth2_redirect_html().body)
    redirect_policy = _policy(f"script-src {_script_hashes(redirect)}")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": page_policy})

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return HTMLResponse(redirect, headers={"Content-Security-Policy": redirect_policy})
