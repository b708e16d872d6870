"""A real browser for the web faces: Playwright driving Debian's Chromium (never a browser
download), against one live server for the whole session.

`make test` starts installing Debian's `chromium` in the background when it is missing
(Makefile, `browser`); the first browser test waits for that install. Every page fixture
fails its test on a console error or an uncaught exception in the page, and
`axe_violations` runs axe-core (`axe-playwright-python`) on what is on screen.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.debian_packages import install_log, wait_for_install

CHROMIUM = os.environ.get("RW_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}
PHONE = {"width": 390, "height": 844}
SERIOUS = {"serious", "critical"}


def wait_for_chromium(timeout: float = 900.0) -> str:
    """The browser's path once the Makefile's background install (if any) has finished."""
    wait_for_install(timeout)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}; `make test` installs Debian's chromium with apt:\n{install_log()}")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = wait_for_chromium()
    async with async_playwright() as playwright:
        # The machines run as root, where Chromium's sandbox cannot start.
        launched = await playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


class PageErrors:
    """What went wrong inside a page: console errors and uncaught exceptions."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def watch(self, page: Any) -> None:
        page.on("console", lambda message: message.type == "error" and self.lines.append(
            f"console: {message.text} ({page.url})"))
        page.on("pageerror", lambda error: self.lines.append(f"uncaught: {error} ({page.url})"))

    def expect(self, count: int = 1) -> None:
        """A test that provokes an error on purpose (a refused request logs one) says so."""
        assert len(self.lines) >= count, self.lines
        del self.lines[-count:]


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


async def _page(browser: Any, live_server: Any, errors: PageErrors, **context: Any) -> AsyncIterator[Any]:
    opened = await browser.new_context(base_url=live_server.url, **context)
    page = await opened.new_page()
    errors.watch(page)
    try:
        yield page
    finally:
        await opened.close()
    assert not errors.lines, "\n".join(errors.lines)


@pytest.fixture
async def page(browser: Any, live_server: Any, page_errors: PageErrors) -> AsyncIterator[Any]:
    """A fresh desktop context (1280x800, its own cookies) on the session's live server."""
    async for opened in _page(browser, live_server, page_errors, viewport=DESKTOP):
        yield opened


@pytest.fixture
async def phone_page(browser: Any, live_server: Any, page_errors: PageErrors) -> AsyncIterator[Any]:
    """A fresh phone context (390x844, touch) on the session's live server."""
    async for opened in _page(browser, live_server, page_errors, viewport=PHONE, is_mobile=True,
                              has_touch=True, device_scale_factor=2):
        yield opened


async def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on what the page shows, one line each."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
        for violation in results.response["violations"]
        if violation.get("impact") in SERIOUS
    ]


async def screenshot(page: Any, name: str) -> Path:
    """A picture for the README (docs/screenshots/NAME.png), replaced on every run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
