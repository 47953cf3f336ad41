"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright, never downloaded.

Playwright's own browser builds are never installed (``playwright install`` fetches them from the
internet); the system's ``/usr/bin/chromium`` is launched through ``executable_path``. Without it
the browser tests are skipped on a laptop and fail under ``CI=true``, where ``.ci/run`` installs it.

:class:`PageWatch` records what a page must never do: log an error to the console, throw, or send
a request anywhere but the gateway under test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request

CHROMIUM = Path(os.environ.get("ORDERGATE_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run in CI: {why}")
    pytest.skip(why)


def launch_browser() -> Iterator[Browser]:
    """Yield a launched headless Chromium (for a module-scoped ``browser`` fixture), or skip or fail."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class PageWatch:
    """A page whose console errors, uncaught exceptions and off-gateway requests are recorded."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = origin.rstrip("/")
        self.console_errors: list[str] = []
        self.external_requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _request(self, request: Request) -> None:
        url = request.url
        if not (url.startswith(self.origin + "/") or url.startswith(("data:", "blob:"))):
            self.external_requests.append(url)

    def assert_clean(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.external_requests == [], self.external_requests


def new_page(browser: Browser, origin: str, **context: Any) -> PageWatch:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, **context).new_page()
    page.set_default_timeout(10_000)
    return PageWatch(page, origin)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under ``artifacts/`` (git-ignored) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
