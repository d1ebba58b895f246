"""/docs and /redoc load everything they need from the app itself.

A page that pulls its script from a CDN is blank offline, behind an egress
filter, or the day the CDN serves something else; these tests read the pages
as a browser would and follow every reference. The real browser run is in
tests/browser/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import client_for

PAGES = ("/docs", "/redoc")
YEAR = 31_536_000


class References(HTMLParser):
    """Every URL a page makes the browser fetch: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(str(values[name]))


def references(page: str) -> list[str]:
    parser = References()
    parser.feed(page)
    return parser.urls


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


async def test_the_pages_reference_only_their_own_origin(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        page = await client.get(path)
        assert page.status_code == 200, path
        urls = references(page.text)
        assert urls, path
        for url in urls:
            # A path on this origin; `//host/...` would name another one.
            assert re.match(r"/[^/]", url), f"{path} loads {url}"
        assert not re.search(r"https?://", page.text), path


@pytest.mark.parametrize(
    ("page", "suffix", "media_type", "marker"),
    [
        ("/docs", ".js", "text/javascript", b"SwaggerUIBundle"),
        ("/docs", ".css", "text/css", b".swagger-ui"),
        ("/docs", ".png", "image/png", b"\x89PNG"),
        ("/redoc", ".js", "text/javascript", b"Redoc"),
    ],
)
async def test_each_asset_is_served_with_its_type_and_a_year_of_cache(
    client: httpx.AsyncClient, page: str, suffix: str, media_type: str, marker: bytes
) -> None:
    urls = [url for url in references((await client.get(page)).text) if url.endswith(suffix)]
    assert len(urls) == 1

    asset = await client.get(urls[0])

    assert asset.status_code == 200
    assert asset.headers["content-type"].split(";")[0] == media_type
    assert asset.headers["x-content-type-options"] == "nosniff"
    assert marker in asset.content
    cache = asset.headers["cache-control"]
    assert f"max-age={YEAR}" in cache
    assert "immutable" in cache
    # Versioned: the next release of the files is a new URL, never a stale cache.
    assert re.search(r"/\d+\.\d+\.\d+/", urls[0])


async def test_redoc_finds_its_logo_next_to_the_page(client: httpx.AsyncClient) -> None:
    # The bundle asks for `location.pathname + "/logo-mini.svg"`; a 404 there is
    # an error in the browser's console.
    logo = await client.get("/redoc/logo-mini.svg")

    assert logo.status_code == 200
    assert logo.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in logo.content


async def test_swagger_ui_policy_allows_this_origin_and_its_one_inline_script(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")

    policy = directives(page.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"][0] == "'self'"
    assert all(source.startswith("'sha256-") for source in policy["script-src"][1:])
    assert len(policy["script-src"]) == 1 + page.text.count("<script>")
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]


async def test_redoc_policy_allows_this_origin_and_no_inline_script(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/redoc")

    policy = directives(page.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["worker-src"] == ["blob:"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "<script>" not in page.text


async def test_switching_docs_off_removes_the_pages_and_their_files(
    client: httpx.AsyncClient, app_factory: Callable[..., FastAPI]
) -> None:
    assets = [
        url
        for path in PAGES
        for url in references((await client.get(path)).text)
        if url.startswith("/docs/") or url.startswith("/redoc/")
    ]
    paths = [*PAGES, "/docs/oauth2-redirect", "/redoc/logo-mini.svg", "/openapi.json", *assets]
    application = app_factory(docs_enabled=False)

    async with LifespanManager(application), client_for(application) as http:
        answers = {path: (await http.get(path)).status_code for path in paths}

    assert len(assets) >= 4
    assert set(answers.values()) == {404}, answers
