"""The browser the web faces are tested in works, and so does the scan that judges them."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import PageErrors, axe_violations


async def test_the_browser_reaches_the_live_server_and_axe_names_what_is_wrong(
        page: Any, page_errors: PageErrors) -> None:
    answer = await page.goto("/health")
    assert answer is not None and answer.status == 200
    # axe judges what is on screen: a button with no name is a critical violation.
    await page.set_content("<html lang='en'><head><title>t</title></head>"
                           "<body><main><h1>t</h1><button></button></main></body></html>")
    assert any(line.startswith("button-name (critical)") for line in await axe_violations(page))
    await page.evaluate("console.error('on purpose')")
    page_errors.expect(1)
