"""The docs UIs in a real browser, against a real server: `make test-browser`.

Debian's Chromium, driven headless by Playwright, opens /docs and /redoc on a
server started with `python -m app serve`. Every request a page makes is
recorded: each must go to the server itself, and the console must stay free
of errors (a refused Content-Security-Policy directive is one). In /docs, a
person's first steps are replayed: Authorize with the password form, then
"Try it out" on GET /api/v1/users/me.

A missing browser fails the run: this marker is only selected where Chromium
is meant to be installed (`apt-get install chromium`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

from tests.conftest import free_port
from tests.servers import START_TIMEOUT_SECONDS, serving

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
# Each browser action's bound, so a hang fails instead of stalling the run.
ACTION_TIMEOUT_MS = 20_000
EMAIL = "reader@example.com"
PASSWORD = "a-long-browser-password"
ME = "/api/v1/users/me"


def run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served app on a free loopback port, configured by its environment only."""
    workdir = tmp_path_factory.mktemp("browser-server")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'docs.db'}",
        "SECRET_KEY": "browser-test-secret-key-that-is-long-enough-0123",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_FORMAT": "json",
        "MAIL_BACKEND": "memory",
    }
    # The work directory has no .env: nothing but `env` configures the server.
    run(["migrate"], env, workdir)
    log_path = workdir / "server.log"
    with (
        log_path.open("w") as log,
        serving(env, cwd=workdir, stdout=log, stderr=log, log=log_path) as (base, _),
    ):
        yield base


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is not installed: apt-get install chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, timeout=ACTION_TIMEOUT_MS
        )
        yield launched
        await launched.close()


@dataclass
class Recorder:
    """What a page did that a person would not see: its requests and console errors."""

    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")

    def foreign(self) -> list[str]:
        """Requests to anywhere but the server; data: URIs never leave the page."""
        outside = []
        for url in self.requests:
            if url.startswith("data:"):
                continue
            # blob: URLs carry the origin that made them.
            parts = urlsplit(url.removeprefix("blob:"))
            if f"{parts.scheme}://{parts.netloc}" != self.origin:
                outside.append(url)
        return outside


@pytest.fixture
async def page(browser: Browser, server: str) -> AsyncIterator[tuple[Page, Recorder]]:
    context = await browser.new_context(base_url=server)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    recorder = Recorder(origin=server)
    # On the context, so requests of workers and pop-ups are seen too.
    context.on("request", recorder.on_request)
    opened = await context.new_page()
    opened.on("console", recorder.on_console)
    opened.on("pageerror", recorder.on_page_error)
    yield opened, recorder
    await context.close()


async def test_swagger_ui_authorizes_and_calls_the_api_from_this_origin_only(
    page: tuple[Page, Recorder], server: str
) -> None:
    tab, recorder = page
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        registered = await api.post(
            "/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD}
        )
    assert registered.status_code == 201, registered.text

    await tab.goto("/docs")
    operation = tab.locator(f'.opblock-get:has(.opblock-summary-path[data-path="{ME}"])')
    await operation.wait_for()

    await tab.locator(".auth-wrapper button.authorize").click()
    await tab.locator("#oauth_username").fill(EMAIL)
    await tab.locator("#oauth_password").fill(PASSWORD)
    async with tab.expect_response(lambda answer: answer.url.endswith("/auth/token")) as login:
        await tab.locator(".auth-btn-wrapper button.authorize").click()
    assert (await login.value).status == 200
    await tab.locator(".auth-btn-wrapper button.btn-done").click()

    await operation.locator(".opblock-summary").click()
    await operation.locator("button.try-out__btn").click()
    async with tab.expect_response(lambda answer: answer.url == f"{server}{ME}") as call:
        await operation.locator("button.execute").click()
    answer = await call.value
    assert answer.status == 200
    assert answer.request.headers["authorization"].startswith("Bearer ")
    responses = operation.locator(".live-responses-table")
    shown = responses.locator("tbody .response-col_status")
    assert (await shown.inner_text()).strip() == "200"
    assert EMAIL in await responses.inner_text()

    assert recorder.errors == []
    assert recorder.foreign() == []
    assert f"{server}/openapi.json" in recorder.requests


async def test_redoc_renders_the_schema_from_this_origin_only(
    page: tuple[Page, Recorder],
) -> None:
    tab, recorder = page

    await tab.goto("/redoc")
    await tab.get_by_role("heading", name="Groundwork").first.wait_for()
    await tab.locator(f'text="{ME}"').first.wait_for(state="attached")
    await tab.wait_for_load_state("networkidle")

    assert recorder.errors == []
    assert recorder.foreign() == []
    assert any(url.endswith("/openapi.json") for url in recorder.requests)
