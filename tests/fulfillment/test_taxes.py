"""Rewards valued for taxes: the year's threshold, the W-9 that lets a salesperson pass it,
the program's choice to flag or refuse, and the year-end report."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import msgspec
import pytest

from fulfillment.tables import Order
from fulfillment.taxes import reportable_total, threshold
from programs.programs import get_program
from tests.factories import available, new_participant, projected, random_ref, redeem, shop, shopper

pytestmark = pytest.mark.sql

W9 = {"legal_name": "Dana Q. Seller", "tin": "123-45-6789", "tin_type": "ssn", "certified": True,
      "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "62701"}}


def this_year(zone: str = "UTC") -> int:
    return datetime.now(ZoneInfo(zone)).year


async def test_reaching_the_threshold_exactly_needs_the_form_under_refuse(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client, face_value=2500, tax_form_policy="refuse",
                                  tax_thresholds={str(this_year()): 5000})
    person, me = await shopper(client, program, 20_000)
    first = await redeem(client, me, item["id"])
    assert first.status_code == 201, first.text  # $25 of $50
    before = await available(client, program, person["id"])
    refused = await redeem(client, me, item["id"])  # would make exactly $50: reportable
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "tax_form_required"
    assert "W-9" in problem["detail"] and "$50.00" in problem["detail"]
    assert await available(client, program, person["id"]) == before  # nothing held

    summary = (await client.get("/v1/me/tax-profile", headers=me)).json()
    assert (summary["reportable"], summary["threshold"], summary["profile"]["status"]) == (2500, 5000, "none")
    sent = await client.put("/v1/me/tax-profile", json=W9, headers=me)
    assert sent.status_code == 200, sent.text
    assert sent.json()["profile"] == {"status": "received", "legal_name": "Dana Q. Seller", "tin_last4": "6789",
                                      "received_at": sent.json()["profile"]["received_at"]}
    assert "123456789" not in sent.text and "123-45" not in sent.text
    assert (await redeem(client, me, item["id"])).status_code == 201

    as_admin = await client.get(f"/v1/participants/{person['id']}/tax-profile", headers=program.headers)
    assert as_admin.json()["profile"]["tin_last4"] == "6789" and "123456789" not in as_admin.text
    assert as_admin.json()["reportable"] == 5000


async def test_under_flag_the_order_goes_through_marked_for_the_program(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client, face_value=2500, tax_thresholds={str(this_year()): 2500})
    person, me = await shopper(client, program, 5000)
    order = await redeem(client, me, item["id"])
    assert order.status_code == 201, order.text
    assert "tax_flagged" not in order.text  # the participant is not shown the program's flag
    seen = (await client.get(f"/v1/orders/{order.json()['id']}", headers=program.headers)).json()
    assert seen["tax_flagged"] is True
    summary = (await client.get("/v1/me/tax-profile", headers=me)).json()
    assert summary["form_needed"] is True
    asked = await client.post(f"/v1/participants/{person['id']}/tax-profile/request", headers=program.headers)
    assert asked.json()["profile"]["status"] == "requested"
    feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    assert any(line["kind"] == "tax_form_requested" for line in feed)


async def test_a_retry_answers_its_order_after_the_policy_became_refuse(client) -> None:  # type: ignore[no-untyped-def]
    """A redemption placed (flagged) under `flag` is already paid: its retry with the same key
    answers that order, even though the program now refuses such orders."""
    program, _, item = await shop(client, face_value=2500, tax_thresholds={str(this_year()): 2500})
    _, me = await shopper(client, program, 5000)
    first = await redeem(client, me, item["id"], key="placed-under-flag")
    assert first.status_code == 201, first.text
    changed = await client.patch("/v1/program", json={"tax_form_policy": "refuse"}, headers=program.headers)
    assert changed.status_code == 200, changed.text
    refused = await redeem(client, me, item["id"])
    assert refused.status_code != 201 and refused.json()["code"] == "tax_form_required", refused.text
    again = await redeem(client, me, item["id"], key="placed-under-flag")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.text
    assert again.json()["id"] == first.json()["id"]


async def test_the_year_end_report_lists_everyone_at_the_threshold_with_their_form(client) -> None:  # type: ignore[no-untyped-def]
    year = this_year()
    program, partner, item = await shop(client, face_value=2500, tax_thresholds={str(year): 5000})
    with_form, me = await shopper(client, program, 10_000)
    assert (await client.put("/v1/me/tax-profile", json={**W9, "legal_name": "=HYPERLINK(1)"}, headers=me)).status_code == 200
    without_form, other = await shopper(client, program, 10_000)
    under, third = await shopper(client, program, 10_000)
    for headers in (me, me, other, other, third):
        assert (await redeem(client, headers, item["id"])).status_code == 201
    # A cancelled order gave nothing: it does not count.
    cancelled = (await redeem(client, third, item["id"])).json()
    assert (await client.post(f"/v1/orders/{cancelled['id']}/cancel", headers=program.headers)).status_code == 200

    answer = await client.get("/v1/program/tax-report", params={"year": year}, headers=program.headers)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {r["participant_id"] for r in rows} == {with_form["id"], without_form["id"]}
    mine = next(r for r in rows if r["participant_id"] == with_form["id"])
    assert (mine["form"], mine["tin"], mine["state"], mine["box3_other_income"]) == ("received", "123456789", "IL",
                                                                                     "50.00")
    assert mine["legal_name"] == "'=HYPERLINK(1)"  # a spreadsheet must not run it
    theirs = next(r for r in rows if r["participant_id"] == without_form["id"])
    assert (theirs["form"], theirs["tin"]) == ("missing", "")
    assert (await client.get("/v1/program/tax-report", params={"year": 1800},
                             headers=program.headers)).status_code == 400


async def test_the_tax_year_is_the_programs_calendar_year(client) -> None:  # type: ignore[no-untyped-def]
    zone = "Pacific/Auckland"
    program_handle, partner, item = await shop(client, timezone=zone)
    program = await get_program(program_handle.id)
    person = await new_participant(client, program_handle)
    new_year = datetime(2027, 1, 1, tzinfo=ZoneInfo(zone))
    for moment, value in [(new_year - timedelta(minutes=1), 100), (new_year, 1000), (new_year + timedelta(hours=1), 10)]:
        await Order.insert(Order(id=random_ref("ord"), program_id=program.id, participant_id=person["id"],
                                 item_id=item["id"], partner_id=partner["id"], face_value=value, currency="USD",
                                 points=1, status="fulfilled", created_at=moment.astimezone(timezone.utc),
                                 updated_at=moment.astimezone(timezone.utc))).run()
    # 2026-12-31 23:59 in Auckland is already 2026-12-31 10:59 UTC; midnight is 11:00 UTC.
    assert await reportable_total(program, person["id"], 2026) == 100
    assert await reportable_total(program, person["id"], 2027) == 1010
    assert (threshold(program, 2025), threshold(program, 2026), threshold(program, 2030)) == (60_000, 200_000, 200_000)


@pytest.mark.parametrize("change", [{"tin": "12345678"}, {"tin": "111-11-1111"}, {"certified": False},
                                    {"address": {**W9["address"], "state": "Illinois"}}, {"tin_type": "itin"}])
async def test_a_bad_form_is_refused_and_nothing_is_kept(client, change) -> None:  # type: ignore[no-untyped-def]
    program, _, _ = await shop(client)
    _, me = await shopper(client, program, 0)
    refused = await client.put("/v1/me/tax-profile", json={**W9, **change}, headers=me)
    assert refused.status_code in (400, 422), refused.text
    assert (await client.get("/v1/me/tax-profile", headers=me)).json()["profile"] == {"status": "none"}


async def test_the_years_total_every_redemption_reads_comes_from_one_index_alone(client) -> None:  # type: ignore[no-untyped-def]
    """Read whenever the year's counter cannot answer: one table read per order of the
    participant would grow with every order they ever placed. The index their order list reads
    holds every column the total needs (migration orders_of_participant): the participant's
    entries in it are read, every order they placed, and no table row."""
    from fulfillment import taxes
    from tests.query_plans import plan, sqlite_only

    sqlite_only(Order)
    program, _, item = await shop(client)
    person, me = await shopper(client, program, 100_000)
    assert (await redeem(client, me, item["id"])).status_code == 201
    view = await get_program(program.id)
    year = taxes.tax_year(view, datetime.now(timezone.utc))
    start, end = taxes.year_bounds(view, year)
    steps = await plan(Order, taxes._TOTAL, program.id, start, end, person["id"])
    assert steps == [
        "SEARCH orders USING COVERING INDEX orders_of_participant (participant_id=?)"], steps
    assert await reportable_total(view, person["id"], year) == item["face_value"]["amount"]


# --- the year's counter (fulfillment/taxes.lua): no SQL read far below the threshold ------

async def _raw_counter(redis, program, person) -> str | None:  # type: ignore[no-untyped-def]
    from fulfillment import taxes
    raw = await redis.get(taxes.counter_of(await get_program(program.id), person["id"], datetime.now(timezone.utc)))
    return None if raw is None else raw.decode()


async def _counter_key(program, person) -> str:  # type: ignore[no-untyped-def]
    from fulfillment import taxes
    return taxes.counter_of(await get_program(program.id), person["id"], datetime.now(timezone.utc))


async def _counter(redis, program, person) -> int | None:  # type: ignore[no-untyped-def]
    """The counter's total, whatever zone and generation it was set under."""
    raw = await _raw_counter(redis, program, person)
    return None if raw is None else int(raw.rsplit("|", 1)[1])


async def _sql_total(program, person) -> int:  # type: ignore[no-untyped-def]
    return await reportable_total(await get_program(program.id), person["id"], this_year())


def _tax_reads(sql) -> list[str]:  # type: ignore[no-untyped-def]
    return [read for read in sql.reads if "FROM orders" in read]


# A total judged from SQL below the threshold is read twice, around the journal's pool orders
# not written yet (fulfillment/taxes.py `reportable_total`): one judgement, whichever way.
JUDGED = 2


def _skip_on_postgres() -> None:
    from piccolo.engine.postgres import PostgresEngine
    if isinstance(Order._meta.db, PostgresEngine):
        pytest.skip("watches SQLite's connections")


@pytest.mark.parametrize("kind", ["partner", "code pool"])
async def test_a_redemption_far_below_the_threshold_reads_no_sql(client, redis, kind) -> None:  # type: ignore[no-untyped-def]
    """The year's total was an SQL read on every redemption, dearer than its SQL write
    (bench/redemptions.py's floors): the order's own Redis call now counts it."""
    from tests.factories import upload_codes
    from tests.sql_writes import sql_write_transactions
    _skip_on_postgres()
    program, _, item = await shop(client, face_value=2500)
    if kind == "code pool":
        await upload_codes(client, program, item["id"], ["GC-1", "GC-2"])
    person, me = await shopper(client, program, 20_000)
    assert await _counter(redis, program, person) is None
    with sql_write_transactions() as sql:
        first = await redeem(client, me, item["id"])  # no counter yet: SQL's total sets it
    assert first.status_code == 201 and len(_tax_reads(sql)) == JUDGED, (first.text, sql.reads)
    assert await _raw_counter(redis, program, person) == "0|UTC|2500"
    with sql_write_transactions() as sql:
        second = await redeem(client, me, item["id"])
    assert second.status_code == 201, second.text
    assert _tax_reads(sql) == []
    await projected(redis, program.id)  # a pool order's row is the projector's to write
    assert await _counter(redis, program, person) == await _sql_total(program, person) == 5000


async def test_a_cancelled_order_stays_counted_and_the_threshold_is_judged_on_sql(client, redis) -> None:  # type: ignore[no-untyped-def]
    """The counter is an upper bound: it never lets an order past the threshold unflagged, and
    one it puts at the threshold is judged on SQL's exact total, as before."""
    program, _, item = await shop(client, face_value=2500, tax_form_policy="refuse",
                                  tax_thresholds={str(this_year()): 7500})
    person, me = await shopper(client, program, 50_000)
    kept = await redeem(client, me, item["id"])
    dropped = await redeem(client, me, item["id"])
    assert kept.status_code == dropped.status_code == 201
    cancel = await client.post(f"/v1/orders/{dropped.json()['id']}/cancel", headers=program.headers)
    assert cancel.status_code == 200, cancel.text
    assert (await _counter(redis, program, person), await _sql_total(program, person)) == (5000, 2500)

    # Counted 5000 + 2500 reaches the threshold, SQL's 2500 + 2500 does not: it goes through.
    third = await redeem(client, me, item["id"])
    assert third.status_code == 201, third.text
    seen = (await client.get(f"/v1/orders/{third.json()['id']}", headers=program.headers)).json()
    assert seen["status"] == "pending" and not seen.get("tax_flagged"), seen
    # SQL's 5000 + 2500 reaches it: refused, and the refusal counts nothing.
    refused = await redeem(client, me, item["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "tax_form_required", refused.text
    assert await _counter(redis, program, person) == 7500


async def test_what_is_counted_while_the_counter_is_missing_is_kept_for_it(client, redis, settings) -> None:  # type: ignore[no-untyped-def]
    """An order counted with no SQL total at hand (an order an earlier build left `new`) while
    the counter is missing goes to the counter's early key, and the next seed adds it; a
    partner's prize, which makes no call of its own, reads SQL and sets the counter itself."""
    from catalog.items import pricing_of
    from fulfillment import taxes
    from fulfillment.redemptions import place_order
    from fulfillment.sealing import Sealer
    from kernel.ids import new_id
    from wallet.store import WalletStore

    program, _, item = await shop(client, face_value=2500)
    person, me = await shopper(client, program, 20_000)
    for _ in range(2):
        assert (await redeem(client, me, item["id"])).status_code == 201
    view, store = await get_program(program.id), WalletStore(redis)
    now = datetime.now(timezone.utc)
    await redis.delete(taxes.counter_of(view, person["id"], now))  # lost, or from before counters
    await taxes.count(store, view, person["id"], 700, now)  # an order whose row SQL does not have yet
    assert await _counter(redis, program, person) is None
    assert (await redeem(client, me, item["id"])).status_code == 201
    assert await _counter(redis, program, person) == 5000 + 700 + 2500  # SQL's, the early one, this one

    await redis.delete(taxes.counter_of(view, person["id"], now))
    prize = await place_order(store, Sealer(settings.encryption_key), view, pricing_of(view), person["id"],
                              item["id"], None, source="prize", order_id=new_id("ord"))
    assert (prize.status, prize.points) == ("pending", 0)
    assert await _counter(redis, program, person) == await _sql_total(program, person) == 10_000


async def test_a_call_from_an_earlier_build_makes_every_counter_of_the_program_count_again(client, redis) -> None:  # type: ignore[no-untyped-def]
    """A process of an earlier build places orders without counting them: its call moves the
    program's generation, and a counter set before it is judged again from SQL."""
    from kernel.ids import new_id
    from kernel.keys import no_record
    from tests.sql_writes import sql_write_transactions
    from wallet import keys as wallet_keys
    from wallet.store import WalletStore

    _skip_on_postgres()
    program, _, item = await shop(client, face_value=2500)
    person, me = await shopper(client, program, 20_000)
    assert (await redeem(client, me, item["id"])).status_code == 201
    assert await _raw_counter(redis, program, person) == "0|UTC|2500"
    # An earlier build's rw_partner_hold: five keys, eight arguments, no counter.
    p, order_id = program.id, new_id("ord")
    reply = await WalletStore(redis).fcall("rw_partner_hold", [
        no_record(p),
        wallet_keys.journal(p), wallet_keys.config(p), wallet_keys.wallet(p, person["id"]), wallet_keys.hold(p, order_id)],
        ["fp", 60, order_id, person["id"], 100, new_id("tx"), '{"reason": "an earlier build"}', 0])
    assert b'"ok":true' in reply
    assert await redis.hget(wallet_keys.config(p), "tax_gen") == b"1"
    with sql_write_transactions() as sql:
        again = await redeem(client, me, item["id"])
    assert again.status_code == 201, again.text
    assert len(_tax_reads(sql)) == JUDGED  # the counter no longer counted: SQL judged, and set it again
    # SQL's 2500 read before this order, this order's 2500, and the 2500 the counter held (an
    # order it counted might still have been on its way to SQL): more than SQL's, never less.
    assert await _raw_counter(redis, program, person) == "1|UTC|7500"
    assert await _sql_total(program, person) == 5000
    with sql_write_transactions() as sql:
        assert (await redeem(client, me, item["id"])).status_code == 201
    assert _tax_reads(sql) == []  # it counts again
    assert (await _counter(redis, program, person), await _sql_total(program, person)) == (10_000, 7500)


async def test_an_order_a_library_of_an_earlier_build_placed_is_judged_again_from_sql(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    """A process of this build calling a library an earlier build loaded: the call counted
    nothing and checked nothing (its reply has no `tax`). The order, placed, is judged again
    from SQL (flagged, never refused: its points are held) and every counter is set again."""
    from fulfillment import order_writes, partner_orders
    from wallet import keys as wallet_keys

    program, _, item = await shop(client, face_value=2500, tax_form_policy="refuse",
                                  tax_thresholds={str(this_year()): 5000})
    person, me = await shopper(client, program, 20_000)
    assert (await redeem(client, me, item["id"])).status_code == 201  # counted 2500 of 5000
    await redis.set((await _counter_key(program, person)), "0|UTC|0")  # a counter that missed it
    decode = partner_orders._decode
    monkeypatch.setattr(partner_orders, "_decode", lambda raw: msgspec.structs.replace(decode(raw), tax=None))
    write = partner_orders._write

    async def projector_first(program_view, order, partner, title, journalled=False):  # type: ignore[no-untyped-def]
        # The journal projector wrote the row first, as the call judged it (not flagged).
        await order_writes.record_pending(msgspec.structs.replace(order, tax_flagged=False), partner, [])
        return await write(program_view, order, partner, title, journalled)

    monkeypatch.setattr(partner_orders, "_write", projector_first)
    placed = await redeem(client, me, item["id"])  # judged from the counter: 0 + 2500 < 5000
    monkeypatch.undo()
    assert placed.status_code == 201, placed.text
    seen = (await client.get(f"/v1/orders/{placed.json()['id']}", headers=program.headers)).json()
    assert seen["tax_flagged"] is True  # SQL's 2500 + 2500 reaches the threshold, whoever wrote the row
    assert await redis.hget(wallet_keys.config(program.id), "tax_gen") == b"1"


async def test_a_counter_this_build_cannot_read_is_set_again_from_sql(client, redis) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client, face_value=2500)
    person, me = await shopper(client, program, 20_000)
    assert (await redeem(client, me, item["id"])).status_code == 201
    await redis.set(await _counter_key(program, person), b"\xff not a counter")
    assert (await redeem(client, me, item["id"])).status_code == 201
    assert await _raw_counter(redis, program, person) == "0|UTC|5000"


async def test_an_order_the_counter_no_longer_bears_out_is_refused_before_anything_moves(client, redis) -> None:  # type: ignore[no-untyped-def]
    """Judged from the counter alone, the order's call checks the counter again: one that would
    now reach the threshold (a concurrent order moved it) is refused, nothing held."""
    from fulfillment import partner_orders, taxes
    from fulfillment.order_writes import NewOrder
    from kernel.ids import new_id
    from wallet.store import WalletStore

    program, partner, item = await shop(client, face_value=2500)
    person, me = await shopper(client, program, 20_000)
    assert (await redeem(client, me, item["id"])).status_code == 201  # counted 2500
    view, now = await get_program(program.id), datetime.now(timezone.utc).replace(microsecond=0)
    judged = await taxes.check(view, person["id"], 2500, now, refusable=True, presume=True)
    assert judged.limit == str(threshold(view, this_year())) and judged.seed == ""
    tight = msgspec.structs.replace(judged, limit="4000")  # 2500 counted + 2500 reaches it
    order = NewOrder(id=new_id("ord"), program_id=program.id, participant_id=person["id"], item_id=item["id"],
                     partner_id=partner["id"], source="redemption", face_value=2500, currency="USD", points=250,
                     created_at=now)
    before = (await client.get("/v1/me/wallet", headers=me)).json()
    with pytest.raises(taxes.Recount):
        await partner_orders.place(WalletStore(redis), view, order, partner, "a card", tax=tight)
    assert (await client.get("/v1/me/wallet", headers=me)).json() == before
    assert await _counter(redis, program, person) == 2500


async def test_a_new_time_zone_sets_the_counter_again_from_sql(client, redis) -> None:  # type: ignore[no-untyped-def]
    from tests.sql_writes import sql_write_transactions
    _skip_on_postgres()
    program, _, item = await shop(client, face_value=2500)
    person, me = await shopper(client, program, 20_000)
    for _ in range(2):
        assert (await redeem(client, me, item["id"])).status_code == 201
    moved = await client.patch("/v1/program", json={"timezone": "Pacific/Kiritimati"}, headers=program.headers)
    assert moved.status_code == 200, moved.text
    assert (await get_program(program.id)).timezone == "Pacific/Kiritimati"
    with sql_write_transactions() as sql:
        assert (await redeem(client, me, item["id"])).status_code == 201
    assert len(_tax_reads(sql)) == JUDGED
    raw = await _raw_counter(redis, program, person)
    assert raw is not None and raw.split("|")[1] == "Pacific/Kiritimati"


async def test_concurrent_first_redemptions_count_exactly_what_sql_holds(client, redis) -> None:  # type: ignore[no-untyped-def]
    """Twenty redemptions at once, none finding the counter: each reads SQL, the first call sets
    the counter and every call adds its own order."""
    import asyncio

    from fulfillment import taxes
    program, _, item = await shop(client, face_value=100)
    person, me = await shopper(client, program, 100_000)
    assert (await redeem(client, me, item["id"])).status_code == 201
    await redis.delete(taxes.counter_of(await get_program(program.id), person["id"], datetime.now(timezone.utc)))
    answers = await asyncio.gather(*(redeem(client, me, item["id"]) for _ in range(20)))
    assert [a.status_code for a in answers] == [201] * 20
    assert await _sql_total(program, person) == 2100
    assert await _counter(redis, program, person) == 2100


async def test_a_pool_order_whose_row_is_not_written_yet_counts_toward_the_threshold(client, redis) -> None:  # type: ignore[no-untyped-def]
    """A code-pool order judged from the counter alone is the journal projector's to write: a
    check that reads SQL before then counts it from the journal, so the next order cannot slip
    past the threshold. An order judged from SQL is written on its request."""
    from tests.factories import upload_codes
    from tests.games.test_spin_projection import projection_paused
    program, _, item = await shop(client, face_value=2500, tax_form_policy="refuse",
                                  tax_thresholds={str(this_year()): 7500})
    await upload_codes(client, program, item["id"], ["GC-1", "GC-2", "GC-3"])
    person, me = await shopper(client, program, 20_000)
    async with projection_paused(redis, program.id):
        first = await redeem(client, me, item["id"])  # no counter yet: judged from SQL, written at once
        assert first.status_code == 201 and first.json()["status"] == "fulfilled", first.text
        assert await _sql_total(program, person) == 2500
        second = await redeem(client, me, item["id"])  # judged from the counter: the projector's to write
        assert second.status_code == 201, second.text
        assert await _sql_total(program, person) == 2500
        await redis.delete(await _counter_key(program, person))  # the next is judged from SQL and the journal
        refused = await redeem(client, me, item["id"])  # would make exactly $75: reportable
        assert refused.status_code == 409 and refused.json()["code"] == "tax_form_required", refused.text
    await projected(redis, program.id)
    assert await _sql_total(program, person) == 5000


async def test_the_tax_page_counts_an_order_redeemed_a_moment_ago(client, redis) -> None:  # type: ignore[no-untyped-def]
    """The salesperson who just redeemed opens their tax page: the order counts, though the
    journal projector has not written its row yet. So does the admin's view of them."""
    from tests.factories import upload_codes
    from tests.games.test_spin_projection import projection_paused
    program, _, item = await shop(client, face_value=2500, tax_thresholds={str(this_year()): 60_000})
    await upload_codes(client, program, item["id"], ["GC-1", "GC-2"])
    person, me = await shopper(client, program, 20_000)
    async with projection_paused(redis, program.id):
        assert (await redeem(client, me, item["id"])).status_code == 201  # judged from SQL: written at once
        second = await redeem(client, me, item["id"])  # judged from the counter: the projector's to write
        assert second.status_code == 201 and second.json()["status"] == "fulfilled", second.text
        assert await _sql_total(program, person) == 2500
        mine = (await client.get("/v1/me/tax-profile", headers=me)).json()
        theirs = (await client.get(f"/v1/participants/{person['id']}/tax-profile", headers=program.headers)).json()
        asked = await client.post(f"/v1/participants/{person['id']}/tax-profile/request", headers=program.headers)
        sent = await client.put("/v1/me/tax-profile", json=W9, headers=me)
        assert (asked.status_code, sent.status_code) == (200, 200), (asked.text, sent.text)
        assert [mine["reportable"], theirs["reportable"], asked.json()["reportable"], sent.json()["reportable"]] == [
            5000] * 4
    await projected(redis, program.id)
    assert await _sql_total(program, person) == 5000
    assert (await client.get("/v1/me/tax-profile", headers=me)).json()["reportable"] == 5000  # counted once


async def test_the_tax_page_answers_while_the_projector_is_far_behind(client, redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A page that shows the total reads the journal's newest entries only, as the order lists
    do: a journal longer than a redemption's check reads whole (503 there) still answers."""
    from fulfillment import unwritten
    from tests.factories import upload_codes
    from tests.games.test_spin_projection import projection_paused
    from wallet import keys as wallet_keys
    program, _, item = await shop(client, face_value=100, tax_thresholds={str(this_year()): 60_000})
    await upload_codes(client, program, item["id"], [f"GC-{n}" for n in range(6)])
    person, me = await shopper(client, program, 20_000)
    monkeypatch.setattr(unwritten, "TAX_SCAN", 3)  # "whole" now means at most 3 entries
    monkeypatch.setattr(unwritten, "SCAN", 2)
    async with projection_paused(redis, program.id):
        for _ in range(5):
            assert (await redeem(client, me, item["id"])).status_code == 201
        assert await redis.xlen(wallet_keys.journal(program.id)) >= 3
        page = await client.get("/v1/me/tax-profile", headers=me)
        assert page.status_code == 200, page.text
        # The newest entries only: the last order counts, not all four the journal holds.
        written = await _sql_total(program, person)
        assert written + 100 <= page.json()["reportable"] < written + 400
    await projected(redis, program.id)
    assert (await client.get("/v1/me/tax-profile", headers=me)).json()["reportable"] == 500
