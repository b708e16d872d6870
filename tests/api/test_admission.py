"""Past its in-flight bound a process answers 503 at once, and admits again as soon as
requests finish; health checks are always admitted."""

from __future__ import annotations

import asyncio

import httpx
from litestar import Litestar, get

from api.admission import admission
from api.problems import exception_handlers


def _app_with_a_slow_route(bound: int) -> tuple[Litestar, asyncio.Event, list[int]]:
    release = asyncio.Event()
    entered: list[int] = []

    @get("/v1/slow")
    async def slow() -> dict[str, bool]:
        entered.append(1)
        await release.wait()
        return {"done": True}

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app = Litestar([slow, health], exception_handlers=exception_handlers)
    app.asgi_handler = admission(app, app.asgi_handler, bound)
    return app, release, entered


async def test_requests_past_the_bound_answer_503_at_once_and_the_admitted_ones_finish() -> None:
    app, release, entered = _app_with_a_slow_route(2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        admitted = [asyncio.create_task(http.get("/v1/slow")) for _ in range(2)]
        while len(entered) < 2:
            await asyncio.sleep(0.01)

        shed = await asyncio.wait_for(http.get("/v1/slow"), 5)
        assert shed.status_code == 503
        assert shed.headers["content-type"].startswith("application/problem+json")
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["code"] == "unavailable"
        assert len(entered) == 2  # the shed request never reached the route

        assert (await http.get("/health")).status_code == 200  # a busy process is alive

        release.set()
        assert [r.status_code for r in await asyncio.gather(*admitted)] == [200, 200]
        assert (await http.get("/v1/slow")).status_code == 200  # admitted again once they finished
