"""Sweepstakes, end to end: create (commit the seed), enter (points or free), close (freeze
the entries file and publish its hash), draw (rw-fair-1 with a beacon), pay the winners.

Tickets live in Redis while the sweepstakes is open (games/sweepstakes.lua takes an entry in
one atomic step: open, under the maximum, paid for). Closing stops entries in Redis first,
then freezes the canonical entries file in SQL. The draw and the proof are pure
(games/fairness.py); paying the winners is idempotent per pick, so a retried draw never
pays twice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from catalog.items import Pricing, item_row, redemption_points
from fulfillment.redemptions import place_order
from fulfillment.sealing import Sealer
from fulfillment.tables import Order
from games import fairness
from games import sweepstakes_keys as swkeys
from games.drand import beacon_after
from games.sweepstakes_tables import Sweepstakes, SweepstakesEntriesFile, SweepstakesFreeEntry, SweepstakesWinner
from programs import standings
from programs.feed import FeedEntry, publish
from programs.programs import Money, ProgramView
from wallet import accounts, keys
from wallet.errors import Conflict, DomainError, IdempotencyKeyReused, InsufficientPoints, Invalid, NotFound
from wallet.errors import ProgramSuspended
from wallet.ids import Id, new_id
from wallet.moments import utc
from wallet.pages import decode_cursor, next_cursor
from wallet.replies import Reply, reply_text
from wallet.store import Idem, WalletStore
from wallet.tables import LedgerEntry

Status = Literal["open", "closed", "drawn"]
Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
Count = Annotated[int, Meta(ge=1, le=1_000_000_000)]
MAX_PICKS = 1000
PAY_LOCK_MS = 120_000
# Lua computes in doubles: one participant's spend stays far below 2^53 so every cost is exact.
MAX_SPEND = 10**12  # Lua's JSON writes 14 significant digits: keep every amount well inside


class SweepstakesClosed(DomainError):
    code = "sweepstakes_closed"


class SweepstakesNotOpen(DomainError):
    code = "sweepstakes_not_open"


class LimitReached(DomainError):
    code = "limit_reached"


class NoBeacon(DomainError):
    code = "validation_error"


_ENTRY_ERRORS: dict[str, type[DomainError]] = {
    "sweepstakes_closed": SweepstakesClosed, "sweepstakes_not_open": SweepstakesNotOpen,
    "limit_reached": LimitReached, "insufficient_points": InsufficientPoints, "not_found": NotFound,
    "conflict": Conflict, "idempotency_key_reused": IdempotencyKeyReused,
    "program_suspended": ProgramSuspended,
    "validation_error": Invalid,  # a balance would pass 2^53 - 1 (wallet/bounds.py)
}


# --- Design --------------------------------------------------------------------------


class PointsPrize(msgspec.Struct, tag="points", tag_field="type", frozen=True, forbid_unknown_fields=True):
    points: accounts.Points
    quantity: Annotated[int, Meta(ge=1, le=MAX_PICKS)] = 1
    description: Annotated[str, Meta(max_length=500)] = ""


class ItemPrize(msgspec.Struct, tag="item", tag_field="type", frozen=True, forbid_unknown_fields=True):
    item_id: Id
    quantity: Annotated[int, Meta(ge=1, le=MAX_PICKS)] = 1
    description: Annotated[str, Meta(max_length=500)] = ""


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


_decode_spec = msgspec.json.Decoder(SweepstakesSpec).decode


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


class Entry(msgspec.Struct, frozen=True):
    transaction_id: str
    sweepstakes_id: str
    participant_id: str
    count: int
    points: int  # what the tickets cost (0 for free entries)
    tickets: int  # the participant's tickets now
    total_tickets: int
    balance: accounts.Balance


class Entered(msgspec.Struct, frozen=True):
    entry: Entry
    replayed: bool


class WinnerView(msgspec.Struct, frozen=True, omit_defaults=True):
    pick: int
    role: str
    public_id: str
    participant_id: str
    status: str
    prize: Any = None
    transaction_id: str | None = None
    order_id: str | None = None
    detail: str = ""


class WinnersReport(msgspec.Struct, frozen=True):
    sweepstakes_id: str
    status: str
    total_tickets: int
    entrants: int
    paid_tickets: int
    free_tickets: int
    points_collected: int
    winners: list[WinnerView]


class _EnterOutcome(Reply, frozen=True):
    tx: str | None = None
    points: int = 0
    count: int = 0
    tickets: int = 0
    total: int = 0
    available: int = 0
    held: int = 0


class _CloseOutcome(Reply, frozen=True):
    status: str = ""
    tickets: int = 0
    entrants: int = 0
    closed_ms: int = 0


# --- Helpers -------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _rfc3339(moment: datetime) -> str:
    return utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public_id_of(key: str, participant_id: str) -> str:
    """The participant's pseudonym in one sweepstakes' entries file: an HMAC under a key kept
    secret per sweepstakes, so it is stable, reveals no id, and links no two sweepstakes."""
    return "e" + hmac.new(key.encode(), participant_id.encode(), hashlib.sha256).hexdigest()[:24]


def prize_ranks(spec: SweepstakesSpec) -> list[Prize | None]:
    """The prize of each winner, rank 1 first: prizes expanded by their quantities."""
    ranks: list[Prize | None] = [p for p in spec.prizes for _ in range(p.quantity)]
    return ranks + [None] * (spec.winners - len(ranks))


async def _prize_views(program: ProgramView, spec: SweepstakesSpec, pricing: Pricing,
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
        f"Entry period: from {_rfc3339(starts)} to {_rfc3339(spec.closes_at)} (UTC). Entries after the close "
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


async def _view(store: WalletStore, program: ProgramView, row: dict[str, Any], pricing: Pricing) -> SweepstakesView:
    spec = _decode_spec(row["spec"])
    if row["status"] == "open":
        total, entrants = await _live_totals(store.client, program.id, row["id"])
    else:
        total, entrants = row["total_tickets"], row["entrants"]
    prizes = await _prize_views(program, spec, pricing, strict=False)
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


# --- Create and read -----------------------------------------------------------------


async def create(store: WalletStore, sealer: Sealer, program: ProgramView, spec: SweepstakesSpec,
                 pricing: Pricing) -> SweepstakesView:
    now = _now()
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
    await _prize_views(program, spec, pricing)
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
        "status": "open", "starts_ms": str(_ms(spec.starts_at)) if spec.starts_at else "",
        "closes_ms": str(_ms(spec.closes_at)), "cost": str(spec.entry_cost_points),
        "max": str(spec.max_entries_per_participant), "pidk": pid_key})
    return await _view(store, program, await sweepstakes_row(program.id, sweepstakes_id), pricing)


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


async def _current_row(store: WalletStore, program_id: str, sweepstakes_id: str) -> dict[str, Any]:
    """The row, closed first if its close time has passed (closing by time)."""
    row = await sweepstakes_row(program_id, sweepstakes_id)
    if row["status"] == "open" and utc(row["closes_at"]) <= _now():
        return await close_row(store, row)
    return row


async def get(store: WalletStore, program: ProgramView, sweepstakes_id: str, pricing: Pricing) -> SweepstakesView:
    return await _view(store, program, await _current_row(store, program.id, sweepstakes_id), pricing)


async def list_all(store: WalletStore, program: ProgramView, pricing: Pricing, limit: int = 50,
                   cursor: str | None = None, status: Status | None = None) -> SweepstakesPage:
    after = decode_cursor(cursor)
    where = Sweepstakes.program_id == program.id
    if after is not None:
        where &= Sweepstakes.id < after
    if status is not None:
        where &= Sweepstakes.status == status
    rows = await Sweepstakes.select().where(where).order_by(Sweepstakes.id, ascending=False).limit(limit + 1).run()
    return SweepstakesPage(items=[await _view(store, program, r, pricing) for r in rows[:limit]],
                           next_cursor=next_cursor([r["id"] for r in rows], limit))


async def _my_tickets(store: WalletStore, program_id: str, row: dict[str, Any], participant_id: str) -> int:
    key = await store.client.hget(swkeys.config(program_id, row["id"]), "pidk")
    if key is None:
        return 0
    held = await store.client.hget(swkeys.tickets(program_id, row["id"]), public_id_of(reply_text(key), participant_id))
    return int(held or 0)


async def mine(store: WalletStore, program: ProgramView, participant_id: str, pricing: Pricing,
               limit: int = 50, cursor: str | None = None) -> MySweepstakesPage:
    """Open sweepstakes (still before their close), newest first, with my tickets and odds."""
    after = decode_cursor(cursor)
    where = (Sweepstakes.program_id == program.id) & (Sweepstakes.status == "open") \
        & (Sweepstakes.closes_at > _now())
    if after is not None:
        where &= Sweepstakes.id < after
    rows = await Sweepstakes.select().where(where).order_by(Sweepstakes.id, ascending=False).limit(limit + 1).run()
    items = [await _mine_one(store, program, r, participant_id, pricing) for r in rows[:limit]]
    return MySweepstakesPage(items=items, next_cursor=next_cursor([r["id"] for r in rows], limit))


async def _mine_one(store: WalletStore, program: ProgramView, row: dict[str, Any], participant_id: str,
                    pricing: Pricing) -> MySweepstakes:
    view = await _view(store, program, row, pricing)
    tickets = await _my_tickets(store, program.id, row, participant_id)
    total = view.odds.total_tickets
    return MySweepstakes(sweepstakes=view, my_tickets=tickets,
                         tickets_left=max(0, view.max_entries_per_participant - tickets),
                         my_chance=(tickets / total) if total else None)


async def my_one(store: WalletStore, program: ProgramView, participant_id: str, sweepstakes_id: str,
                 pricing: Pricing) -> MySweepstakes:
    row = await _current_row(store, program.id, sweepstakes_id)
    return await _mine_one(store, program, row, participant_id, pricing)


# --- Entries -------------------------------------------------------------------------


async def enter(store: WalletStore, program_id: str, sweepstakes_id: str, participant_id: str, count: int,
                idem: Idem, free_reason: str | None = None) -> Entered:
    """Buys `count` tickets with points, or with `free_reason` grants them free (the admin's
    alternate method of entry): one atomic Redis step either way."""
    client = store.client
    config = swkeys.config(program_id, sweepstakes_id)
    key = await client.hget(config, "pidk")
    if key is None:
        raise NotFound("no such sweepstakes")
    free = free_reason is not None
    public_id = public_id_of(reply_text(key), participant_id)
    kind = "sweepstakes_free_entry" if free else "sweepstakes_entry"
    meta = {"reason": free_reason if free else "sweepstakes entry", "sweepstakes_id": sweepstakes_id,
            "count": count, "public_id": public_id}
    key_list = [idem.key or keys.no_record(program_id), keys.journal(program_id), keys.accounts(program_id),
                keys.config(program_id), keys.wallet(program_id, participant_id), config,
                swkeys.tickets(program_id, sweepstakes_id), swkeys.owners(program_id, sweepstakes_id)]
    args = [idem.fingerprint, store.ttl, new_id("tx"), participant_id, public_id, count, kind, sweepstakes_id,
            msgspec.json.encode(meta).decode(), str(store.clock() // 1_000_000), "1" if free else "0"]
    raw = await store.fcall("rw_sw_enter", key_list, args)
    outcome = msgspec.json.decode(raw, type=_EnterOutcome)
    if not outcome.ok:
        error = _ENTRY_ERRORS.get(outcome.code or "", DomainError)
        raise error(outcome.detail or outcome.code or "refused", replayed=bool(outcome.replayed))
    if free:
        # The audit trail of free entries; a replay writes nothing new.
        await SweepstakesFreeEntry.insert(SweepstakesFreeEntry(
            id=outcome.tx, sweepstakes_id=sweepstakes_id, program_id=program_id, participant_id=participant_id,
            count=outcome.count, reason=free_reason, created_at=_now())).on_conflict(action="DO NOTHING").run()
    entry = Entry(transaction_id=outcome.tx or "", sweepstakes_id=sweepstakes_id, participant_id=participant_id,
                  count=outcome.count, points=outcome.points, tickets=outcome.tickets, total_tickets=outcome.total,
                  balance=accounts.Balance(available=outcome.available, held=outcome.held))
    return Entered(entry=entry, replayed=bool(outcome.replayed))


async def ensure_participant(program_id: str, participant_id: str) -> None:
    """Free entries name a participant: an unknown one is a 404 like everywhere else."""
    from programs.participants import get_participant

    await get_participant(program_id, participant_id)


# --- Close ---------------------------------------------------------------------------


async def read_tickets(client: Any, program_id: str, sweepstakes_id: str, batch: int = 100_000) -> dict[bytes, bytes]:
    """Every entrant's tickets, as Redis answers them (public id -> decimal count). HSCAN in
    batches keeps Valkey responsive; the hash no longer changes once closed, and the dict
    absorbs the duplicates HSCAN may hand out."""
    key = swkeys.tickets(program_id, sweepstakes_id)
    found: dict[bytes, bytes] = {}
    cursor = 0
    while True:
        cursor, part = await client.hscan(key, cursor, count=batch)
        found.update(part)
        if not cursor:
            break
    return found


def entries_file_of_tickets(found: dict[bytes, bytes]) -> tuple[bytes, int, int]:
    """(file, total tickets, entrants): exactly fairness.entries_file's bytes (a test holds
    them equal), built from Redis's bytes without a Python object per field, because a
    million entrants go through here. Public ids are ours ("e" + hex) and counts are
    HINCRBY's canonical decimals, so only the sort and the join are left to do."""
    ids = sorted(k for k, v in found.items() if v != b"0")
    body = b"participant,tickets\n" + b"".join([b"%s,%s\n" % (k, found[k]) for k in ids])
    total = sum(map(int, found.values()))
    if body.count(b",") != len(ids) + 1 or body.count(b"\n") != len(ids) + 1:
        raise ValueError("a public id holds a comma or a line break")
    if total > fairness.MAX_TOTAL:
        raise ValueError(f"a sweepstakes holds at most 2^32 tickets, these entries hold {total}")
    return body, total, len(ids)


async def close_row(store: WalletStore, row: dict[str, Any]) -> dict[str, Any]:
    """Freezes entries (Redis first, so no entry can land after) and publishes the entries
    file and its hash. Safe to repeat and to race: the same frozen tickets give the same bytes."""
    program_id, sweepstakes_id = row["program_id"], row["id"]
    if row["status"] != "open":
        return row
    raw = await store.fcall("rw_sw_close", [swkeys.config(program_id, sweepstakes_id)],
                            [str(store.clock() // 1_000_000)])
    closed = msgspec.json.decode(raw, type=_CloseOutcome)
    if not closed.ok:
        raise NotFound("the sweepstakes has no entry state in Redis")
    body, total, entrants = entries_file_of_tickets(await read_tickets(store.client, program_id, sweepstakes_id))
    digest = fairness.entries_hash(body)
    closed_at = datetime.fromtimestamp(closed.closed_ms / 1000, tz=timezone.utc)
    await SweepstakesEntriesFile.insert(SweepstakesEntriesFile(
        sweepstakes_id=sweepstakes_id, program_id=program_id, entries_hash=digest, body=body.decode())
    ).on_conflict(action="DO NOTHING").run()
    await Sweepstakes.update({
        Sweepstakes.status: "closed", Sweepstakes.closed_at: closed_at, Sweepstakes.entries_hash: digest,
        Sweepstakes.total_tickets: total, Sweepstakes.entrants: entrants, Sweepstakes.updated_at: _now(),
    }).where((Sweepstakes.id == sweepstakes_id) & (Sweepstakes.status == "open")).run()
    return await sweepstakes_row(program_id, sweepstakes_id)


async def close(store: WalletStore, program: ProgramView, sweepstakes_id: str, pricing: Pricing) -> SweepstakesView:
    row = await close_row(store, await sweepstakes_row(program.id, sweepstakes_id))
    return await _view(store, program, row, pricing)


async def entries_file_of(sweepstakes_id: str) -> bytes:
    """The published entries file; 404 until the sweepstakes closes (closing it if its time passed)."""
    row = await public_row(sweepstakes_id)
    if row["status"] == "open":
        raise NotFound("the entries file is published when the sweepstakes closes")
    found = await SweepstakesEntriesFile.select(SweepstakesEntriesFile.body).where(
        SweepstakesEntriesFile.sweepstakes_id == sweepstakes_id).first().run()
    if found is None:
        raise NotFound("the entries file is published when the sweepstakes closes")
    return found["body"].encode()


async def close_if_due(store: WalletStore, sweepstakes_id: str) -> None:
    """For public reads: a sweepstakes whose close time passed closes on first sight."""
    row = await public_row(sweepstakes_id)
    if row["status"] == "open" and utc(row["closes_at"]) <= _now():
        await close_row(store, row)


# --- Draw ----------------------------------------------------------------------------


class Beacon(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    source: Annotated[str, Meta(min_length=1, max_length=200)]
    round: Annotated[int, Meta(ge=0)] | Annotated[str, Meta(min_length=1, max_length=200)]
    value: Annotated[str, Meta(min_length=1, max_length=1000)]


def _proof(row: dict[str, Any], seed: str, beacon: dict[str, Any], picks: list[str], winners: int) -> dict[str, Any]:
    return {
        "algorithm": fairness.ALGORITHM, "sweepstakes_id": row["id"], "server_seed_hash": row["server_seed_hash"],
        "committed_at": _rfc3339(row["committed_at"]), "server_seed": seed, "entries_hash": row["entries_hash"],
        "total_tickets": row["total_tickets"], "entrants": row["entrants"], "beacon": beacon,
        "winners": picks[:winners], "alternates": picks[winners:],
    }


async def draw(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, sweepstakes_id: str,
               beacon: Beacon | None, drand_url: str | None) -> dict[str, Any]:
    """Draws winners then alternates and pays the winners; answers the proof document.

    Drawing again answers the published proof (and retries any prize not paid yet): a
    sweepstakes is drawn once, by whichever request records its proof first."""
    row = await _current_row(store, program.id, sweepstakes_id)
    if row["status"] == "open":
        raise Conflict("the sweepstakes is still open: close it (or wait for its close time) before the draw")
    if row["status"] == "closed":
        if beacon is not None:
            chosen: dict[str, Any] = msgspec.to_builtins(beacon)
        elif drand_url:
            chosen = await beacon_after(drand_url, utc(row["closed_at"]))
        else:
            raise NoBeacon("send a beacon {source, round, value}: no drand beacon is configured (RW_DRAND_URL)",
                           field="beacon")
        spec = _decode_spec(row["spec"])
        seed = sealer.open(row["server_seed"])
        found = await SweepstakesEntriesFile.select(SweepstakesEntriesFile.body).where(
            SweepstakesEntriesFile.sweepstakes_id == sweepstakes_id).first().run()
        entries = fairness.parse_entries_file(found["body"].encode())
        picks = fairness.draw(seed, row["entries_hash"], chosen["value"], entries, spec.winners + spec.alternates)
        proof = _proof(row, seed, chosen, picks, spec.winners)
        await Sweepstakes.update({
            Sweepstakes.status: "drawn", Sweepstakes.proof: msgspec.json.encode(proof).decode(),
            Sweepstakes.drawn_at: _now(), Sweepstakes.updated_at: _now(),
        }).where((Sweepstakes.id == sweepstakes_id) & (Sweepstakes.status == "closed")).run()
        row = await sweepstakes_row(program.id, sweepstakes_id)
    proof = msgspec.json.decode(row["proof"])
    await _record_winners(store, row, proof)
    await pay_winners(store, sealer, program, pricing, row)
    return proof


async def _record_winners(store: WalletStore, row: dict[str, Any], proof: dict[str, Any]) -> None:
    """One row per pick, from the published proof (so a crash before this step is repaired
    by drawing again)."""
    spec = _decode_spec(row["spec"])
    picks = [(p, "winner") for p in proof["winners"]] + [(p, "alternate") for p in proof["alternates"]]
    if not picks:
        return
    owners = await store.client.hmget(swkeys.owners(row["program_id"], row["id"]), [p for p, _ in picks])
    prizes = prize_ranks(spec)
    now = _now()
    rows = []
    for number, ((public_id, role), owner) in enumerate(zip(picks, owners), start=1):
        prize = prizes[number - 1] if role == "winner" and number - 1 < len(prizes) else None
        status = "alternate" if role == "alternate" else ("pending" if prize is not None else "none")
        rows.append(SweepstakesWinner(
            id=f"{row['id']}:{number}", sweepstakes_id=row["id"], program_id=row["program_id"], pick=number,
            role=role, public_id=public_id, participant_id=reply_text(owner) if owner is not None else "",
            prize=msgspec.json.encode(prize).decode() if prize is not None else None, status=status, detail="",
            created_at=now))
    await SweepstakesWinner.insert(*rows).on_conflict(action="DO NOTHING").run()


def _prize_order_id(sweepstakes_id: str, pick: int) -> str:
    # Deterministic, so paying the same pick again finds its order instead of placing another.
    return "ord_" + hashlib.sha256(f"{sweepstakes_id}:{pick}".encode()).hexdigest()[:26]


async def pay_winners(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                      row: dict[str, Any]) -> None:
    # One payer at a time (two draw calls may overlap); the lock expires if the payer dies,
    # and every payment is idempotent per pick anyway.
    lock = swkeys.paying(program.id, row["id"])
    if not await store.client.set(lock, "1", nx=True, px=PAY_LOCK_MS):
        return
    try:
        await _pay_due(store, sealer, program, pricing, row)
    finally:
        await store.client.delete(lock)


async def _pay_due(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                   row: dict[str, Any]) -> None:
    spec = _decode_spec(row["spec"])
    due = await SweepstakesWinner.select().where(
        (SweepstakesWinner.sweepstakes_id == row["id"]) & SweepstakesWinner.status.is_in(["pending", "failed"])
    ).order_by(SweepstakesWinner.pick).run()
    for winner in due:
        prize = msgspec.json.decode(winner["prize"], type=Prize)
        try:
            if isinstance(prize, PointsPrize):
                values = await _pay_points(store, program, row, winner, prize.points, spec.name)
                text = f"+{prize.points:,} {program.point_name}: you won {spec.name}"
                points: int | None = prize.points
            else:
                values = await _pay_item(store, sealer, program, pricing, row, winner, prize.item_id)
                text = f"You won {spec.name}: {prize.description or 'a gift card'} is on its way"
                points = None
        except DomainError as exc:
            await SweepstakesWinner.update({SweepstakesWinner.status: "failed", SweepstakesWinner.detail: exc.detail}) \
                .where(SweepstakesWinner.id == winner["id"]).run()
            continue
        # A failure's detail is cleared once paid; a replacement's note ("replaces pick n") stays.
        detail = "" if winner["status"] == "failed" else winner["detail"]
        # Conditional: a forfeit that raced this payment keeps its say (and the report shows it).
        await SweepstakesWinner.update({SweepstakesWinner.status: "paid", SweepstakesWinner.detail: detail,
                                        **values}).where((SweepstakesWinner.id == winner["id"])
                                                         & SweepstakesWinner.status.is_in(["pending", "failed"])).run()
        await publish(program.id, [FeedEntry(
            key=f"sweepstakes:{row['id']}:won:{winner['pick']}", participant_id=winner["participant_id"],
            kind="sweepstakes_win", text=text, points=points, reference=row["id"])])


async def _pay_points(store: WalletStore, program: ProgramView, row: dict[str, Any], winner: dict[str, Any],
                      points: int, name: str) -> dict[Any, Any]:
    # The transaction id is pinned on the winner row before any point moves: a draw retried
    # after the idempotency record expired finds that transaction in the ledger and pays nothing.
    tx = await _pinned_transaction(winner)
    if await _in_ledger(tx):
        return {SweepstakesWinner.transaction_id: tx}
    idem = Idem(key=keys.idempotency(program.id, "sweepstakes", f"{row['id']}:{winner['pick']}"), fingerprint="prize")
    # The boards that count prizes (count_prizes) move in the grant's own call, once it applies.
    boards = await standings.grant_boards(program.id, winner["participant_id"], standings.UNKNOWN_TEAM, tx, _now(),
                                          prizes=True)
    try:
        moved = await accounts.grant(store, program.id, winner["participant_id"], points, f"won {name}", idem,
                                     kind="sweepstakes_prize", reference=row["id"], tx=tx, boards=boards)
    except DomainError:
        # A refusal (budget) is recorded with the key; drop it so a later draw call can pay.
        await store.client.delete(idem.key)
        raise
    return {SweepstakesWinner.transaction_id: moved.move.transaction_id}


async def _in_ledger(transaction_id: str | None) -> bool:
    return bool(transaction_id) and bool(
        await LedgerEntry.exists().where(LedgerEntry.transaction_id == transaction_id).run())


async def _pinned_transaction(winner: dict[str, Any]) -> str:
    """The id this pick's payment is made under: chosen once, kept on the winner row."""
    await SweepstakesWinner.update({SweepstakesWinner.transaction_id: new_id("tx")}).where(
        (SweepstakesWinner.id == winner["id"]) & SweepstakesWinner.transaction_id.is_null()).run()
    pinned = await SweepstakesWinner.select(SweepstakesWinner.transaction_id).where(
        SweepstakesWinner.id == winner["id"]).first().run()
    return str(pinned["transaction_id"])


async def _pay_item(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                    row: dict[str, Any], winner: dict[str, Any], item_id: str) -> dict[Any, Any]:
    order_id = _prize_order_id(row["id"], winner["pick"])
    # place_order carries on an order a crash left half-made (new, or pending with no code).
    await place_order(store, sealer, program, pricing, winner["participant_id"], item_id, None, source="prize",
                      order_id=order_id)
    return {SweepstakesWinner.order_id: order_id}


async def published_proof(store: WalletStore, sweepstakes_id: str) -> bytes:
    await close_if_due(store, sweepstakes_id)
    row = await public_row(sweepstakes_id)
    if row["proof"] is None:
        raise NotFound("the proof is published with the draw")
    return row["proof"].encode()


# --- Alternates ----------------------------------------------------------------------


async def forfeit(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, sweepstakes_id: str,
                  pick: int, reason: str) -> WinnersReport:
    """A winner who did not claim (or is not eligible) gives up the prize; the first alternate
    not yet promoted, in draw order, takes it over and is paid. A prize already paid cannot
    be forfeited (take it back with a deduction first if it must be)."""
    row = await sweepstakes_row(program.id, sweepstakes_id)
    if row["status"] != "drawn":
        raise Conflict("only a drawn sweepstakes has winners")
    winner = await SweepstakesWinner.select().where(SweepstakesWinner.id == f"{sweepstakes_id}:{pick}").first().run()
    if winner is None or winner["role"] != "winner":
        raise NotFound("no such winner")
    if winner["status"] in ("paid", "forfeited"):
        raise Conflict(f"this winner's prize is {winner['status']}; it cannot be forfeited")
    if await _in_ledger(winner["transaction_id"]):  # paid, though a crash kept the row from saying so
        raise Conflict("this winner's prize is paid; it cannot be forfeited")
    taken = await SweepstakesWinner.update({SweepstakesWinner.status: "forfeited", SweepstakesWinner.detail: reason}) \
        .where((SweepstakesWinner.id == winner["id"]) & (SweepstakesWinner.status == winner["status"])) \
        .returning(SweepstakesWinner.id).run()
    if not taken:
        raise Conflict("this winner changed meanwhile; read the report and try again")
    alternates = await SweepstakesWinner.select().where(
        (SweepstakesWinner.sweepstakes_id == sweepstakes_id) & (SweepstakesWinner.role == "alternate")
        & (SweepstakesWinner.status == "alternate")).order_by(SweepstakesWinner.pick).run()
    for alternate in alternates:
        promoted = await SweepstakesWinner.update({
            SweepstakesWinner.role: "winner", SweepstakesWinner.prize: winner["prize"],
            SweepstakesWinner.status: "pending" if winner["prize"] else "none",
            SweepstakesWinner.detail: f"replaces pick {pick}",
        }).where((SweepstakesWinner.id == alternate["id"]) & (SweepstakesWinner.status == "alternate")) \
            .returning(SweepstakesWinner.id).run()
        if promoted:  # else a concurrent forfeit took this alternate: try the next one
            break
    await pay_winners(store, sealer, program, pricing, row)
    return await report(store, program, sweepstakes_id)


# --- Report --------------------------------------------------------------------------


async def report(store: WalletStore, program: ProgramView, sweepstakes_id: str) -> WinnersReport:
    row = await _current_row(store, program.id, sweepstakes_id)
    spec = _decode_spec(row["spec"])
    raw = await store.client.hmget(swkeys.config(program.id, sweepstakes_id), "tickets", "entrants", "paid", "free")
    total, entrants, paid, free = (int(v or 0) for v in raw)
    winners = await SweepstakesWinner.select().where(SweepstakesWinner.sweepstakes_id == sweepstakes_id) \
        .order_by(SweepstakesWinner.pick).run()
    return WinnersReport(
        sweepstakes_id=sweepstakes_id, status=row["status"], total_tickets=total, entrants=entrants,
        paid_tickets=paid, free_tickets=free, points_collected=paid * spec.entry_cost_points,
        winners=[WinnerView(pick=w["pick"], role=w["role"], public_id=w["public_id"],
                            participant_id=w["participant_id"], status=w["status"],
                            prize=msgspec.json.decode(w["prize"]) if w["prize"] else None,
                            # A pinned id names a payment only once it is made.
                            transaction_id=w["transaction_id"] if w["status"] == "paid" else None, order_id=w["order_id"], detail=w["detail"])
                 for w in winners])
