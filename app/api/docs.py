"""Swagger UI at /docs and ReDoc at /redoc, served by the app itself.

Both pages load their scripts and stylesheets from this app, never from a
CDN: the documentation works offline and behind egress filters, and each
page's Content-Security-Policy allows this origin only. The files come from
the fastapi-standalone-docs package (Swagger UI and ReDoc builds, with
licence files), pinned by uv.lock. Their URLs carry that package's version,
so a browser may keep them for a year and an upgrade is a new URL.

Swagger UI is started by one inline script: instead of allowing inline
scripts at large, the policy names it by its hash, computed from the page
actually served. ReDoc needs no inline script, but writes its styles at run
time. Swagger UI's schema validator badge is switched off: it would send the
schema's URL to a third party.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_PACKAGE = "fastapi-standalone-docs"
_ASSETS_MODULE = "fastapi_standalone_docs"
YEAR = "public, max-age=31536000, immutable"
DAY = "public, max-age=86400"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


@dataclass(frozen=True)
class Asset:
    url: str
    source: str  # under the package's static/ folder
    media_type: str
    cache_control: str = YEAR


def _assets(version: str) -> dict[str, Asset]:
    base = f"{DOCS_URL}/assets/{version}"
    js = "text/javascript; charset=utf-8"
    return {
        "swagger_js": Asset(f"{base}/swagger-ui-bundle.js", "swagger/swagger-ui-bundle.js", js),
        "swagger_css": Asset(
            f"{base}/swagger-ui.css", "swagger/swagger-ui.css", "text/css; charset=utf-8"
        ),
        "redoc_js": Asset(f"{base}/redoc.standalone.js", "redoc/redoc.standalone.js", js),
        "favicon": Asset(f"{base}/favicon.png", "fastapi/favicon.png", "image/png"),
        # ReDoc's bundle asks for its logo next to the page, at an unversioned URL.
        "redoc_logo": Asset(
            f"{REDOC_URL}/logo-mini.svg", "redoc/logo-mini.svg", "image/svg+xml", DAY
        ),
    }


def _hashes(pattern: re.Pattern[bytes], page: bytes) -> str:
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(code).digest()).decode() + "'"
        for code in pattern.findall(page)
    )


def _policy(*directives: str) -> str:
    common = ("frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'")
    return "; ".join(("default-src 'none'", *directives, *common))


def install_docs(app: FastAPI) -> None:
    static = Path(str(resources.files(_ASSETS_MODULE))) / "static"
    assets = _assets(metadata.version(ASSETS_PACKAGE))
    for asset in assets.values():
        _serve_asset(app, asset, static / asset.source)
    openapi_url = app.openapi_url or "/openapi.json"
    _install_swagger_ui(app, openapi_url, assets)
    _install_redoc(app, openapi_url, assets)


def _serve_asset(app: FastAPI, asset: Asset, path: Path) -> None:
    # Checked at start-up: a broken install fails here, not as a 500 on first view.
    if not path.is_file():
        raise RuntimeError(f"{ASSETS_PACKAGE} is missing {path}; reinstall it")
    headers = {"Cache-Control": asset.cache_control}

    async def serve() -> FileResponse:
        return FileResponse(path, media_type=asset.media_type, headers=headers)

    app.add_api_route(asset.url, serve, methods=["GET"], include_in_schema=False)


def _install_swagger_ui(app: FastAPI, openapi_url: str, assets: dict[str, Asset]) -> None:
    page = bytes(
        get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=assets["swagger_js"].url,
            swagger_css_url=assets["swagger_css"].url,
            swagger_favicon_url=assets["favicon"].url,
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        ).body
    )
    page_policy = _policy(
        f"script-src 'self' {_hashes(_INLINE_SCRIPT, page)}",
        "style-src 'self'",
        # Swagger UI draws its icons as data: URIs.
        "img-src 'self' data:",
        # The schema, and "Authorize" posting the password form to the token route.
        "connect-src 'self'",
    )
    redirect = bytes(get_swagger_ui_oauth2_redirect_html().body)
    redirect_policy = _policy(f"script-src {_hashes(_INLINE_SCRIPT, redirect)}")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": page_policy})

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return HTMLResponse(redirect, headers={"Content-Security-Policy": redirect_policy})


def _install_redoc(app: FastAPI, openapi_url: str, assets: dict[str, Asset]) -> None:
    page = bytes(
        get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=assets["redoc_js"].url,
            redoc_favicon_url=assets["favicon"].url,
            with_google_fonts=False,
        ).body
    )
    policy = _policy(
        "script-src 'self'",
        # ReDoc styles itself by writing <style> elements at run time, whose
        # text no hash can name in advance.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        # Search runs in a worker built from a blob: URL.
        "worker-src blob:",
    )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": policy})
