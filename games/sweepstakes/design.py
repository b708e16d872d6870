"""A sweepstakes' design and how it reads: the spec an admin sends (costs, maximum, winners,
prizes, dates, rules), the prizes with their retail values, the official rules text, the
odds, and the view every read answers. Creating one commits its server seed."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from catalog.items import Pricing, item_row, redemption_points
from fulfillment.sealing import Sealer
from games import fairness
from games.sweepstakes import MAX_PICKS, ItemPrize, PointsPrize
from games.sweepstakes import keys as swkeys
from games.sweepstakes.tables import Sweepstakes
from programs.programs import Money, ProgramView
from kernel.errors import Invalid, NotFound
from kernel.ids import new_id
from kernel.clock import utc
from wallet.store import WalletStore

Status = Literal["open", "closed", "drawn"]
Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
Count = Annotated[int, Meta(ge=1, le=1_000_000_000)]
# Lua computes in doubles: one participant's spend stays far below 2^53 so every cost is exact.
MAX_SPEND = 10**12  # Lua's JSON writes 14 significant digits: keep every amount well inside


Prize = PointsPrize | ItemPrize


class SweepstakesSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Text200
    entry_cost_points: Annotated[int, Meta(ge=0, le=1_000_000_000, description="points per ticket; 0 = free")]
    max_entries_per_participant: Annotated[int, Meta(ge=1, le=1_000_000_000,
                                                     description="tickets one participant may hold, paid and "
                                                                 "free together")]
    winners: Annotated[int, Meta(ge=1, le=MAX_PICKS)]
    alternates: Annotated[int, Meta(ge=0, le=MAX_PICKS)] = 0
    closes_at: Annotated[datetime, Meta(tz=True)]
    starts_at: Annotated[datetime, Meta(tz=True)] | None = None
    prizes: Annotated[list[Prize], Meta(max_length=100, description="in rank order; quantities add up to "
                                                                     "`winners` (empty: prizes handled outside)")] = []
    description: Annotated[str, Meta(max_length=2000)] = ""
    sponsor: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    eligibility: Annotated[str, Meta(min_length=1, max_length=2000)] = (
        "Open to participants enrolled in the program and active at the close.")
    free_entry_method: Annotated[str, Meta(min_length=1, max_length=2000)] = (
        "Write to the program administrator with your name and the sweepstakes name; each request received "
        "before the close earns one free entry, up to the same maximum per person.")
    claim_days: Annotated[int, Meta(ge=1, le=365)] = 14
    rules_extra: Annotated[str, Meta(max_length=10_000)] = ""


decode_spec = msgspec.json.Decoder(SweepstakesSpec).decode


class PrizeView(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    quantity: int
    retail_value: Money
    description: str = ""
    points: int | None = None
    item_id: str | None = None
    item_name: str | None = None


class Odds(msgspec.Struct, frozen=True):
    total_tickets: int
    entrants: int
    chance_per_ticket: float | None  # winners / tickets: exact while every entrant holds one ticket
    text: str


class SweepstakesView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    status: Status
    name: str
    entry_cost_points: int
    max_entries_per_participant: int
    winners: int
    alternates: int
    closes_at: datetime
    server_seed_hash: str
    committed_at: datetime
    prizes: list[PrizeView]
    odds: Odds
    rules: str
    proof_url: str
    entries_url: str
    created_at: datetime
    starts_at: datetime | None = None
    description: str = ""
    closed_at: datetime | None = None
    entries_hash: str | None = None
    drawn_at: datetime | None = None


class SweepstakesPage(msgspec.Struct, frozen=True):
    items: list[SweepstakesView]
    next_cursor: str | None


class MySweepstakes(msgspec.Struct, frozen=True):
    sweepstakes: SweepstakesView
    my_tickets: int
    tickets_left: int  # how many more I may hold
    my_chance: float | None  # of being picked first: my tickets / all tickets


class MySweepstakesPage(msgspec.Struct, frozen=True):
    items: list[MySweepstakes]
    next_cursor: str | None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def rfc3339(moment: datetime) -> str:
    return utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prize_ranks(spec: SweepstakesSpec) -> list[Prize | None]:
    """The prize of each winner, rank 1 first: prizes expanded by their quantities."""
    ranks: list[Prize | None] = [p for p in spec.prizes for _ in range(p.quantity)]
    return ranks + [None] * (spec.winners - len(ranks))


async def prize_views(program: ProgramView, spec: SweepstakesSpec, pricing: Pricing,
                       strict: bool = True) -> list[PrizeView]:
    """Prizes with their retail values. `strict` (at creation) refuses an item that is not an
    active fixed-value catalog item; afterwards an item disabled since is still shown."""
    views = []
    for prize in spec.prizes:
        if isinstance(prize, PointsPrize):
            value = Money(amount=prize.points * program.point_value.amount, currency=program.point_value.currency)
            views.append(PrizeView(type="points", quantity=prize.quantity, retail_value=value,
                                   description=prize.description or f"{prize.points:,} {program.point_name}",
                                   points=prize.points))
            continue
        try:
            row = await item_row(program.id, prize.item_id)
            if strict:
                redemption_points(row, pricing, None)
        except (NotFound, Invalid):
            if strict:
                raise Invalid(f"prize item {prize.item_id!r} is not an active fixed-value catalog item",
                              field="prizes") from None
            views.append(PrizeView(type="item", quantity=prize.quantity, retail_value=Money(
                amount=0, currency=program.point_value.currency), description=prize.description or "item",
                item_id=prize.item_id))
            continue
        name = row["name"]
        views.append(PrizeView(type="item", quantity=prize.quantity,
                               retail_value=Money(amount=row["face_value"], currency=row["currency"]),
                               description=prize.description or name, item_id=prize.item_id, item_name=row["name"]))
    return views


def _money(value: Money) -> str:
    return f"{value.amount / 100:,.2f} {value.currency}"


def official_rules(row: dict[str, Any], spec: SweepstakesSpec, program: ProgramView,
                   prizes: list[PrizeView]) -> str:
    """The official rules FAIRNESS.md asks for, in plain text, from the design."""
    sid = row["id"]
    starts = spec.starts_at or utc(row["created_at"])
    if prizes:
        lines = [f"  - {p.quantity} x {p.description} (approximate retail value {_money(p.retail_value)} each)"
                 for p in prizes]
        prize_text = "\n".join(lines)
    else:
        prize_text = "  - as announced by the sponsor"
    cost = (f"{spec.entry_cost_points:,} {program.point_name} per entry" if spec.entry_cost_points
            else "free, in the program app")
    parts = [
        f"OFFICIAL RULES: {spec.name}",
        "NO PURCHASE OR PAYMENT OF ANY KIND IS NECESSARY TO ENTER OR WIN. Spending points does not improve "
        "the odds of an entry over a free entry.",
        f"Sponsor: {spec.sponsor or program.name}.",
        f"Eligibility: {spec.eligibility}",
        f"Entry period: from {rfc3339(starts)} to {rfc3339(spec.closes_at)} (UTC). Entries after the close "
        "are refused.",
        f"How to enter: {cost}, up to {spec.max_entries_per_participant:,} entries per person.",
        f"Free alternate method of entry: {spec.free_entry_method} Free entries have the same odds as paid "
        "entries and count toward the same maximum.",
        f"Prizes ({spec.winners} winner{'s' if spec.winners != 1 else ''}):\n{prize_text}",
        "Odds: each entry is one ticket; the odds of winning depend on the number of eligible tickets "
        "received, and each winner is drawn with a chance proportional to the tickets held. A person wins "
        "at most once.",
        f"Drawing: after the close, {spec.winners} winner(s) and {spec.alternates} alternate(s) are drawn, in "
        "that order, by the provably fair method rw-fair-1: the server seed committed (by its SHA-256) when the "
        "sweepstakes was created, the SHA-256 of the entries file published at the close, and a public "
        "randomness beacon (a drand round) that did not exist at the close. Anyone can recompute the draw "
        "with `reward-wallet verify sweepstakes`.",
        f"Claiming: winners are notified in the app; a winner who does not claim within {spec.claim_days} days "
        "is replaced by the alternates, in order.",
        f"Winners list: published with the proof at /v1/public/sweepstakes/{sid}/proof and the entries file at "
        f"/v1/public/sweepstakes/{sid}/entries.csv (participants appear there under pseudonyms only).",
    ]
    if spec.rules_extra:
        parts.append(spec.rules_extra)
    return "\n\n".join(parts)


def _odds(total: int, entrants: int, winners: int) -> Odds:
    if total == 0:
        return Odds(total_tickets=0, entrants=0, chance_per_ticket=None,
                    text="no entries yet: the odds depend on the number of eligible entries received")
    chance = min(1.0, winners / total)
    if chance >= 1.0:
        text = f"{total:,} tickets for {winners:,} prizes: every ticket holder currently wins"
    else:
        text = f"about 1 in {total / winners:,.0f} per ticket ({total:,} tickets from {entrants:,} entrants " \
               f"for {winners:,} prizes)"
    return Odds(total_tickets=total, entrants=entrants, chance_per_ticket=chance, text=text)


async def _live_totals(client: Any, program_id: str, sweepstakes_id: str) -> tuple[int, int]:
    raw = await client.hmget(swkeys.config(program_id, sweepstakes_id), "tickets", "entrants")
    return int(raw[0] or 0), int(raw[1] or 0)


async def view_of(store: WalletStore, program: ProgramView, row: dict[str, Any], pricing: Pricing) -> SweepstakesView:
    spec = decode_spec(row["spec"])
    if row["status"] == "open":
        total, entrants = await _live_totals(store.client, program.id, row["id"])
    else:
        total, entrants = row["total_tickets"], row["entrants"]
    prizes = await prize_views(program, spec, pricing, strict=False)
    status = row["status"]
    return SweepstakesView(
        id=row["id"], status=status, name=spec.name, entry_cost_points=spec.entry_cost_points,
        max_entries_per_participant=spec.max_entries_per_participant, winners=spec.winners,
        alternates=spec.alternates, closes_at=spec.closes_at, server_seed_hash=row["server_seed_hash"],
        committed_at=utc(row["committed_at"]), prizes=prizes, odds=_odds(total, entrants, spec.winners),
        rules=official_rules(row, spec, program, prizes),
        proof_url=f"/v1/public/sweepstakes/{row['id']}/proof",
        entries_url=f"/v1/public/sweepstakes/{row['id']}/entries.csv",
        created_at=utc(row["created_at"]), starts_at=spec.starts_at, description=spec.description,
        closed_at=utc(row["closed_at"]), entries_hash=row["entries_hash"], drawn_at=utc(row["drawn_at"]),
    )


async def create(store: WalletStore, sealer: Sealer, program: ProgramView, spec: SweepstakesSpec,
                 pricing: Pricing) -> SweepstakesView:
    now = utc_now()
    if spec.closes_at <= now:
        raise Invalid("closes_at must be in the future", field="closes_at")
    if spec.starts_at is not None and spec.starts_at >= spec.closes_at:
        raise Invalid("starts_at must be before closes_at", field="starts_at")
    if spec.entry_cost_points * spec.max_entries_per_participant > MAX_SPEND:
        raise Invalid(f"entry_cost_points x max_entries_per_participant must be at most {MAX_SPEND:,} (what one "
                      "participant may spend)", field="max_entries_per_participant")
    if spec.prizes and sum(p.quantity for p in spec.prizes) != spec.winners:
        raise Invalid(f"the prizes' quantities add up to {sum(p.quantity for p in spec.prizes)}, not to the "
                      f"{spec.winners} winners", field="prizes")
    await prize_views(program, spec, pricing)
    seed, pid_key = fairness.new_server_seed(), secrets.token_hex(32)
    sweepstakes_id = new_id("swp")
    # SQL first: a Redis failure after it leaves a sweepstakes nobody can enter (404), never
    # entries into a sweepstakes that does not exist.
    await Sweepstakes.insert(Sweepstakes(
        id=sweepstakes_id, program_id=program.id, name=spec.name, status="open",
        spec=msgspec.json.encode(spec).decode(), server_seed_hash=fairness.server_seed_hash(seed),
        server_seed=sealer.seal(seed), public_id_key=sealer.seal(pid_key), committed_at=now,
        closes_at=spec.closes_at, created_at=now, updated_at=now)).run()
    await store.client.hset(swkeys.config(program.id, sweepstakes_id), mapping={
        "status": "open", "starts_ms": str(epoch_ms(spec.starts_at)) if spec.starts_at else "",
        "closes_ms": str(epoch_ms(spec.closes_at)), "cost": str(spec.entry_cost_points),
        "max": str(spec.max_entries_per_participant), "pidk": pid_key})
    return await view_of(store, program, await sweepstakes_row(program.id, sweepstakes_id), pricing)


async def sweepstakes_row(program_id: str, sweepstakes_id: str) -> dict[str, Any]:
    row = await Sweepstakes.select().where(
        (Sweepstakes.id == sweepstakes_id) & (Sweepstakes.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such sweepstakes")
    return row


async def public_row(sweepstakes_id: str) -> dict[str, Any]:
    row = await Sweepstakes.select().where(Sweepstakes.id == sweepstakes_id).first().run()
    if row is None:
        raise NotFound("no such sweepstakes")
    return row
