"""The app renews its access token before it expires, so a session that outlives a token
never sends a dead one: no 401 in the console. On a server whose tokens live 10 seconds
(RW_ACCESS_TOKEN_TTL's least), the shortest real wait that shows it; the default 15
minutes renews a minute early (tests/console/test_app_modules.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.conftest import LiveServer
from tests.console.conftest import PHONE, PageErrors
from tests.factories import bearer, grant, new_participant, new_program, wait_until

TTL = 10


@pytest.fixture(scope="module")
def short_tokens(settings: Any, migrated: Any) -> Iterator[LiveServer]:
    server = LiveServer(extra_env={"RW_ACCESS_TOKEN_TTL": str(TTL)})
    try:
        yield server
    finally:
        server.stop()


async def test_a_session_longer_than_its_token_sends_no_dead_token(browser: Any, short_tokens: LiveServer) -> None:
    errors = PageErrors()
    context = await browser.new_context(base_url=short_tokens.url, viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    errors.watch(page)
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda r: "/v1/" in r.url and statuses.append((r.status, r.url)))
    bearers: list[str] = []
    page.on("request", lambda r: "authorization" in r.headers and bearers.append(r.headers["authorization"]))
    try:
        async with httpx.AsyncClient(base_url=short_tokens.url, timeout=30) as api:
            program = await new_program(api)
            person = await new_participant(api, program)
            assert (await grant(api, program, person["id"], 700)).status_code == 201
            link = (await api.post(f"/v1/participants/{person['id']}/sign-in-links",
                                   headers=program.headers)).json()["url"]
            await page.goto(link)
            await expect(page.get_by_test_id("balance")).to_have_text("700")
            first = bearers[0]
            # The renewal comes by itself, at least 5 s before the token dies.
            async with page.expect_response(lambda r: r.url.endswith("/v1/auth/resume"), timeout=TTL * 1000) as renewed:
                pass
            assert (await renewed.value).status == 200

            async def first_token_status() -> int:
                return (await api.get("/v1/me/wallet", headers={"Authorization": first})).status_code

            assert await wait_until(first_token_status, 401, timeout=TTL) == 401
        # The first token is dead now; the app goes on with the renewed one.
        await page.get_by_role("navigation").get_by_role("link", name="Rewards").click()
        await expect(page.get_by_role("heading", name="Rewards", exact=True)).to_be_visible()
        await page.get_by_role("navigation").get_by_role("link", name="Home").click()
        await expect(page.get_by_test_id("balance")).to_have_text("700")
        assert bearers[-1] != first
        assert [s for s in statuses if s[0] == 401] == []
        assert errors.lines == []
    finally:
        await context.close()
