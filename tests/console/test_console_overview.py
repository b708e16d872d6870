"""The console's Overview: the budget and liability in money with expected breakage, the
90-day chart from the daily totals the projector keeps, and what waits for a person, each
number the one the API and the ledger give."""

from __future__ import annotations

import re
from typing import Any


from programs.budget import BudgetView, Figure, expected_breakage
from programs.programs import Money
from tests.console.sessions import get, person_in
from tests.factories import bearer, claim_orders, grant, redeem, shop, shopper, wait_until

# Pages over domain reads and use cases that their own tests run on Postgres too: SQLite
# only, to keep CI under its 20 minutes.


async def test_the_overview_agrees_with_the_api_and_the_ledger(client: Any) -> None:
    program, partner, item = await shop(client, face_value=2500, point_value_cents=1)
    person, headers = await shopper(client, program, 4_000)
    assert (await grant(client, program, person["id"], 1_000)).status_code == 201
    assert (await redeem(client, headers, item["id"])).status_code in (200, 201, 202)
    claimed = await claim_orders(client, bearer(partner["api_key"]))
    (order,) = claimed.json()["items"]
    fulfilled = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=bearer(partner["api_key"]),
                                  json={"credentials": {"code": "GIFT-1234"}})
    assert fulfilled.status_code == 200, fulfilled.text

    async def projected() -> int:
        ledger = (await client.get("/v1/program/ledger", headers=program.headers)).json()
        return sum(a["points"] for a in ledger["accounts"] if a["account"] == "redeemed")

    assert await wait_until(projected, 2_500) == 2_500
    _, session = await person_in(client, program, "viewer")
    page = (await get(client, f"/console/p/{program.id}/overview", session)).text
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert budget["outstanding"]["points"] == 2_500
    assert re.search(r'id="liability">2,500 [^<]*· 25\.00 USD<', page)
    assert "Issued: 5,000" in page and "Redeemed: 2,500" in page, "the chart's totals are the ledger's"
    assert 'id="breakage">0 · 0.00 USD (0%)<' in page, "points have been redeemed and none expired"
    assert re.search(r">fulfilled</dt><dd><a [^>]+>1<", page)
    assert re.search(r'id="lag">0 entries<', page)
    assert "<rect " in page and 'role="img"' in page


def test_expected_breakage_is_the_expired_share_of_what_left_participants() -> None:
    def figure(points: int) -> Figure:
        return Figure(points=points, value=Money(amount=points * 2, currency="USD"))

    def view(expired: int, redeemed: int, games: int, outstanding: int) -> BudgetView:
        return BudgetView(funded=figure(0), issued=figure(0), redeemed=figure(redeemed), expired=figure(expired),
                          outstanding=figure(outstanding), available=figure(0), in_prize_pools=figure(0),
                          spent_on_games=figure(games), overdrawn=False, blocked=False, allow_overdraft=False)

    assert expected_breakage(view(0, 0, 0, 1_000)) is None, "no points have left: no history"
    found = expected_breakage(view(expired=300, redeemed=600, games=100, outstanding=1_000))
    assert found is not None and found.rate == 0.3
    assert (found.expected.points, found.expected.value.amount) == (300, 600)
