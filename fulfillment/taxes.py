"""What participants receive, valued for tax reporting (United States first).

A reward is valued once, when it becomes something of value to the participant: a gift card
or item at its face value when redeemed or won (an order, whatever its source), never points
(points are not income until they become one of those). An order that failed or was
cancelled gave nothing. Per participant and calendar year, counted in the program's time
zone, the total is compared with the year's reporting threshold: payments of that much or
more go on a 1099-MISC, which needs the participant's W-9 (programs/tax_profiles.py).

The threshold is set per tax year: $600 for payments before 2026 and $2,000 from 2026 (the
One Big Beautiful Bill Act raised it), in the program's minor units; a program overrides a
year with `tax_thresholds`. When a redemption would reach it without a form, the program's
`tax_form_policy` applies: `flag` the order and go on, or `refuse` it with
`tax_form_required` and a message that tells the salesperson what to do in the app. A prize
already won is never refused, only flagged.

Knowing the year's total took an SQL read on every redemption, and that read cost more than
the redemption's SQL write (bench/redemptions.py's floors). So each order's own Redis call
also counts its face value into a per-participant counter for its tax year (taxes.lua),
which the redemption's own call checks (the request presumes, `check`): while the counter, an
upper bound of the total, stays below the threshold by more than the order, the order needs no
form and SQL is not asked. Only an order that could reach the threshold (or finds no counter)
reads the exact total, as before, and is placed by a second call.
The counter only grows (a failed or cancelled order stays in it), is set from SQL the first
time, and is set again from SQL after anything that may have left an order out of it (a
process of an earlier build, a time zone change); the order's call refuses an order judged
from a counter that no longer bears the judgement out (taxes.lua). The year-end report and
the tax summary always read SQL.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from redis.exceptions import ResponseError

from fulfillment import keys, order_records, unwritten
from fulfillment.order_writes import NewOrder
from fulfillment.sealing import Sealer
from fulfillment.tables import Order
from kernel.errors import DomainError
from kernel.redis_functions import FunctionStore
from programs.programs import ProgramView
from programs.spreadsheet import safe_cell
from programs.tables import Participant
from programs.tax_profiles import TaxProfileView, forms_of, has_form, profile
from wallet.keys import config as config_key

COUNTED = ["pending", "claimed", "fulfilled"]


class TaxFormRequired(DomainError):
    code = "tax_form_required"


class ReportRow(msgspec.Struct, frozen=True):
    participant_id: str
    total: int


def threshold(program: ProgramView, year: int) -> int:
    override = program.tax_thresholds.get(str(year))
    if override is not None:
        return override
    return 200_000 if year >= 2026 else 60_000


def year_bounds(program: ProgramView, year: int) -> tuple[datetime, datetime]:
    zone = ZoneInfo(program.timezone)
    return (datetime(year, 1, 1, tzinfo=zone).astimezone(timezone.utc),
            datetime(year + 1, 1, 1, tzinfo=zone).astimezone(timezone.utc))


def tax_year(program: ProgramView, moment: datetime) -> int:
    return moment.astimezone(ZoneInfo(program.timezone)).year


# An order that counts toward a program's tax year: its program, a COUNTED status, made within
# the year's bounds (placeholders, in that order). Plain SQL: the total runs on every
# redemption, where Piccolo's builder cost more than SQLite's answer.
_IN_YEAR = (f"program_id = {{}} AND status IN ({', '.join(repr(status) for status in COUNTED)}) "
            "AND created_at >= {} AND created_at < {}")
_TOTAL = f"SELECT SUM(face_value) AS total FROM orders WHERE {_IN_YEAR} AND participant_id = {{}}"
_TOTALS = f"SELECT participant_id, SUM(face_value) AS total FROM orders WHERE {_IN_YEAR} GROUP BY participant_id"


async def reportable_total(program: ProgramView, participant_id: str, year: int, journal: Any = None,
                           reach: int | None = None, whole: bool = True) -> int:
    """`journal`: a Redis client, to count too the participant's pool orders whose rows the
    journal projector has not written yet (fulfillment/unwritten.py), unless SQL's total alone
    comes to `reach` already (the answer the caller needs does not change past it). `whole`:
    read the whole journal or its newest entries only (unwritten.unwritten_values)."""
    start, end = year_bounds(program, year)
    if journal is None:
        return await _sql_total(program, participant_id, start, end)
    if reach is not None and (total := await _sql_total(program, participant_id, start, end)) >= reach:
        return total
    waiting = [order for order in await unwritten.unwritten_values(journal, program.id, participant_id, whole)
               if start <= order[1] < end]
    # Which of them SQL has, then SQL's total again: an order projected after the journal's
    # read is in this total, whether `written` saw it or not (then it counts twice: never
    # not at all).
    there = await order_records.written([order_id for order_id, _, _ in waiting])
    total = await _sql_total(program, participant_id, start, end)
    return total + sum(value for order_id, _, value in waiting if order_id not in there)


async def _sql_total(program: ProgramView, participant_id: str, start: datetime, end: datetime) -> int:
    rows = await Order.raw(_TOTAL, program.id, start, end, participant_id).run()
    return int((rows[0] if rows else {}).get("total") or 0)


def _money(minor: int) -> str:
    return f"${minor / 100:,.2f}"


# A counter outlives its tax year by a month or so: late orders and refunds of December.
COUNTER_TTL = 400 * 86_400


class Recount(Exception):
    """The order's call refused an order judged without SQL (`check(presume=True)`): the
    counter is missing or no longer counts, or it leaves the order no room below the
    threshold. Judge the order again from SQL. Nothing was written."""


class TaxCheck(msgspec.Struct, frozen=True):
    """An order's tax check: whether it is flagged, and its part in the participant's counter
    for the year, which the order's Redis call moves (`call_keys`, `call_args`)."""

    flagged: bool
    counter: str  # the counter's key (keys.tax_counted)
    early: str  # its early key (keys.tax_early)
    zone: str  # the program's time zone, which the counter counts for
    seed: str = ""  # SQL's total as the request read it; "" when it read none
    limit: str = ""  # the threshold, when the order was judged from the counter alone

    def call_keys(self) -> list[str]:
        return [self.counter, self.early]

    def call_args(self, value: int) -> list[Any]:
        """The counter's arguments of rw_pool_redeem and rw_partner_hold (taxes.lua)."""
        return [value, self.seed, COUNTER_TTL, self.zone, self.limit]


def counter_of(program: ProgramView, participant_id: str, moment: datetime) -> str:
    """The participant's counter for the tax year `moment` falls in."""
    return keys.tax_counted(program.id, participant_id, tax_year(program, moment))


async def check(program: ProgramView, participant_id: str, value: int, moment: datetime, refusable: bool,
                presume: bool = False, journal: Any = None) -> TaxCheck:
    """Whether an order of `value` made at `moment` reaches the year's threshold without a tax
    form: flagged; under the `refuse` policy a refusable one raises instead. `presume`: judge
    it unflagged without reading SQL, as long as the order alone stays below the threshold;
    the order's call then checks the participant's counter still leaves it room (taxes.lua:
    a missing counter does not) and refuses with a Recount when not, to judge again from SQL.
    `journal`: see `reportable_total`."""
    year = tax_year(program, moment)
    limit = threshold(program, year)
    part = {"counter": keys.tax_counted(program.id, participant_id, year),
            "early": keys.tax_early(program.id, participant_id, year), "zone": program.timezone}
    if presume and value < limit:
        return TaxCheck(flagged=False, limit=str(limit), **part)
    total = await reportable_total(program, participant_id, year, journal, reach=limit - value)
    if total + value < limit or await has_form(program.id, participant_id):
        return TaxCheck(flagged=False, seed=str(total), **part)
    if refusable and program.tax_form_policy == "refuse":
        raise TaxFormRequired(
            f"Rewards of {_money(limit)} or more in {year} must be reported for taxes, and this one would bring "
            f"yours to {_money(total + value)}. Fill in your tax form (W-9) in the app, then redeem again.")
    return TaxCheck(flagged=True, seed=str(total), **part)


async def count(store: FunctionStore, program: ProgramView, participant_id: str, value: int, moment: datetime,
                seed: str = "") -> None:
    """Counts an order placed with no Redis call of its own (a partner's prize, an order an
    earlier build left `new`), before its SQL row is written (rw_tax_count)."""
    year = tax_year(program, moment)
    try:
        await store.fcall("rw_tax_count", [config_key(program.id), keys.tax_counted(program.id, participant_id, year),
                                           keys.tax_early(program.id, participant_id, year)],
                          [value, seed, COUNTER_TTL, program.timezone])
    except ResponseError as error:
        if "function not found" not in str(error).lower():
            raise
        await uncounted(store, program.id)  # a library of an earlier build: nothing counted


async def uncounted(store: FunctionStore, program_id: str) -> None:
    """An order went uncounted (a process of this build called a library of an earlier one):
    every counter of the program made before it is set again from SQL before it is relied on."""
    await store.client.hincrby(config_key(program_id), "tax_gen", 1)


async def placed_uncounted(store: FunctionStore, program: ProgramView, order: NewOrder, tax: TaxCheck) -> NewOrder:
    """An order a library of an earlier build placed (its reply carries no `tax`): nothing was
    counted, and a judgement made from the counter was not checked by the call. The counters
    are set again (`uncounted`); such an order, already placed, is judged again from SQL and
    flagged if it reaches the threshold (never refused: its points are held). Answers the
    order to write, unchanged when it was judged from SQL in the first place."""
    await uncounted(store, program.id)
    if not tax.limit:
        return order
    judged = await check(program, order.participant_id, order.face_value, order.created_at, refusable=False,
                         journal=store.client)
    return msgspec.structs.replace(order, tax_flagged=judged.flagged)


async def report(program: ProgramView, year: int) -> list[ReportRow]:
    """Everyone whose rewards in `year` reached the threshold, highest first."""
    rows = await Order.raw(_TOTALS, program.id, *year_bounds(program, year)).run()
    limit = threshold(program, year)
    over = [ReportRow(participant_id=r["participant_id"], total=int(r["total"])) for r in rows
            if int(r["total"] or 0) >= limit]
    return sorted(over, key=lambda r: (-r.total, r.participant_id))


async def report_csv(program: ProgramView, year: int, sealer: Sealer) -> str:
    """The year-end file: one row per participant at or over the threshold, with the fields a
    1099-MISC filing needs (box 3, other income). A participant without a form is listed
    with empty form fields and `form: missing`, so nobody reportable is left out."""
    rows = await report(program, year)
    ids = [r.participant_id for r in rows]
    forms = await forms_of(program.id, ids, sealer)
    people = {p["id"]: p for p in await Participant.select(
        Participant.id, Participant.external_id, Participant.display_name, Participant.email).where(
        Participant.id.is_in(ids or ["-"])).run()}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["tax_year", "participant_id", "external_id", "display_name", "email", "form", "legal_name",
                     "tin_type", "tin", "address_line1", "address_line2", "city", "state", "postal_code",
                     "box3_other_income", "currency"])
    for row in rows:
        person = people.get(row.participant_id, {})
        form = forms.get(row.participant_id)
        address = form.address if form else None
        writer.writerow([
            year, row.participant_id, safe_cell(person.get("external_id", "")),
            safe_cell(person.get("display_name", "")),
            safe_cell(person.get("email") or ""), "received" if form else "missing",
            safe_cell(form.legal_name) if form else "", form.tin_type if form else "", form.tin if form else "",
            safe_cell(address.line1) if address else "", safe_cell(address.line2 or "") if address else "",
            safe_cell(address.city) if address else "", address.state if address else "",
            address.postal_code if address else "", f"{row.total / 100:.2f}", program.point_value.currency])
    return out.getvalue()


class TaxSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a participant stands this tax year: what the app and the console show."""

    year: int
    reportable: int  # minor units of the program's currency
    threshold: int
    currency: str
    form_needed: bool  # at or over the threshold (or would be) without a form received
    profile: TaxProfileView


async def summary(program: ProgramView, participant_id: str, sealer: Sealer,
                  moment: datetime | None = None, journal: Any = None) -> TaxSummary:
    """`journal`: a Redis client, so a pool order redeemed a moment ago counts before the
    journal projector writes its row (see `reportable_total`). A page, not a judgement: it
    reads the journal's newest entries only, as the order lists do, and never waits for a
    projector far behind (a redemption's own check reads it whole)."""
    year = tax_year(program, moment or datetime.now(timezone.utc))
    total = await reportable_total(program, participant_id, year, journal, whole=False)
    form = await profile(program.id, participant_id, sealer)
    limit = threshold(program, year)
    return TaxSummary(year=year, reportable=total, threshold=limit, currency=program.point_value.currency,
                      form_needed=form.status != "received" and total >= limit, profile=form)
