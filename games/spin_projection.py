"""A spin's SQL rows, built from its journal entry.

rw_spin (games/spins.lua) journals the spin's whole record in the entry's `meta`; the
journal projector (wallet/journal.py) calls `write_spins` with the spin entries of each
batch and writes the rows it answers in the same SQL transaction as the ledger rows, with
ON CONFLICT DO NOTHING: the spin history row (keyed by the spin's id), and the feed line of
a points prize that first paid points a returned sale left owing (keyed by `owed-paid:<id>`).
The spin's own feed line ("Won ...") is read from its history row (games/spin_feed.py). A
batch projected twice (a crash before the acknowledgement) writes nothing twice. So a spin's
request writes no SQL row; `pending_spins` lets the history read see the spins the projector
has not written yet.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from games.campaigns import campaign_row
from games.wheel import EntriesPrize, FreeSpinPrize, ItemPrize, PointsPrize, WheelSpec
from programs.feed import FEED_COLUMNS, feed_rows, owed_paid_line
from programs.programs import get_program
from wallet import keys
from wallet.journal import BadEntry, JournalEntry, Rows, entry_field, parse_entry

log = logging.getLogger("rw.spins")

_decode_spec = msgspec.json.Decoder(WheelSpec).decode
# Launched campaigns' designs, by (program, campaign): a campaign that has been spun was
# launched, and a launched campaign's spec never changes (only a draft's can), so an entry
# never goes stale. Bounded: cleared when full.
_SPECS: dict[tuple[str, str], WheelSpec] = {}
_SPECS_MAX = 1024
# How far back the history read looks in the journal for spins not yet projected: the
# projector keeps the journal to what is pending, so this bounds the read's cost only when
# the projector has fallen this far behind (those spins show once projected).
PENDING_SCAN = 2_000

SPIN_COLUMNS = ("id", "program_id", "campaign_id", "participant_id", "pair_id", "server_seed_hash", "client_seed",
                "nonce", "weights", "segment_index", "label", "prize", "prize_value", "cost_points", "paid_with",
                "order_id", "created_at")


async def launched_spec(program_id: str, campaign_id: str) -> WheelSpec:
    """The design of a campaign that rw_spin accepted (so launched, so fixed for good)."""
    spec = _SPECS.get((program_id, campaign_id))
    if spec is None:
        spec = _decode_spec((await campaign_row(program_id, campaign_id))["spec"])
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.clear()
        _SPECS[(program_id, campaign_id)] = spec
    return spec


def order_id_of(spin_id: str) -> str:
    """The order an item prize becomes: one per spin, whoever places it."""
    return f"ord_{spin_id.removeprefix('spn_')}"


def feed_id_of(spin_id: str) -> str:
    """The spin's feed line's id: time-ordered as the spin, not as its projection."""
    return f"feed_{spin_id.removeprefix('spn_')}"


def is_recorded_spin(entry: JournalEntry) -> bool:
    """Spins journalled before rw_spin carried their record have no row to build."""
    return entry.kind == "spin" and bool(entry.participant_id) and '"pair"' in entry.metadata


async def spin_row(program_id: str, entry: JournalEntry) -> dict[str, Any]:
    """The spin's history row (Spin's columns), as the request answered it."""
    meta = msgspec.json.decode(entry.metadata)
    spec = await launched_spec(program_id, meta["campaign"])
    index = meta["segment_index"]
    segment = spec.segments[index]
    return {
        "id": entry.transaction_id, "program_id": program_id, "campaign_id": meta["campaign"],
        "participant_id": entry.participant_id, "pair_id": meta["pair"], "server_seed_hash": meta["server_seed_hash"],
        "client_seed": meta["client_seed"], "nonce": meta["nonce"], "weights": msgspec.json.encode(meta["weights"]).decode(),
        "segment_index": index, "label": segment.label,
        "prize": msgspec.json.encode(msgspec.to_builtins(segment.prize)).decode(),
        "prize_value": meta["prize_value"],
        "cost_points": spec.cost_points if meta["paid_with"] == "points" else 0, "paid_with": meta["paid_with"],
        "order_id": order_id_of(entry.transaction_id) if isinstance(segment.prize, ItemPrize) else None,
        "created_at": entry.created_at,
    }


def announcement(spec: WheelSpec, index: int, point_name: str) -> tuple[str, int | None] | None:
    """The feed line's text and points for a spin that landed on segment `index`."""
    prize = spec.segments[index].prize
    if isinstance(prize, PointsPrize):
        return f"Won {prize.points:,} {point_name} on {spec.name}", prize.points
    if isinstance(prize, ItemPrize):
        return f"Won {spec.segments[index].label} on {spec.name}", None
    if isinstance(prize, FreeSpinPrize):
        return f"Won {prize.spins} free spin{'s' if prize.spins > 1 else ''} on {spec.name}", None
    if isinstance(prize, EntriesPrize):
        return f"Won {prize.entries} sweepstakes entr{'ies' if prize.entries > 1 else 'y'} on {spec.name}", None
    return None  # nothing won: no line


def owed_paid_of(entry: JournalEntry) -> int:
    """What a spin's points prize first paid of the points a returned sale left owing (rw_spin
    writes `owed_paid` only then: most spins skip the decode)."""
    if '"owed_paid"' not in entry.metadata:
        return 0
    paid = msgspec.json.decode(entry.metadata).get("owed_paid")
    return paid if isinstance(paid, int) else 0


async def write_spins(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
    """The projector's follower for `spin` entries (wired in api/projection.py): every SQL
    row that follows from them, the history rows and, for a points prize that paid owed
    points first, that line (in the words of programs/feed.py owed_paid_line). The spin's own
    line is its history row, read as a line (games/spin_feed.py)."""
    spins: list[tuple[Any, ...]] = []
    feed: list[tuple[Any, ...]] = []
    point_name = ""
    for entry in entries:
        if not is_recorded_spin(entry):
            continue
        row = await spin_row(program_id, entry)
        spins.append(tuple(row[c] for c in SPIN_COLUMNS))
        paid = owed_paid_of(entry)
        if paid:
            point_name = point_name or (await get_program(program_id)).point_name
            feed += feed_rows(program_id, [owed_paid_line(row["id"], row["participant_id"], paid, point_name)],
                              entry.created_at)
    out = []
    if spins:
        out.append(Rows(table="spins", columns=SPIN_COLUMNS, rows=spins))
    if feed:
        out.append(Rows(table="feed_items", columns=FEED_COLUMNS, rows=feed))
    return out


async def pending_spins(client: Any, program_id: str, participant_id: str | None = None,
                        campaign_id: str | None = None) -> list[dict[str, Any]]:
    """Spins still in the journal (not yet projected), newest first, as history rows: one
    participant's, one campaign's, or all. The journal keeps only what is pending, so this
    is a short read. Read it before SQL: an entry leaves the journal only after its row is
    committed, so every spin is in one or the other (or both)."""
    found: list[dict[str, Any]] = []
    for stream_id, fields in await client.xrevrange(keys.journal(program_id), count=PENDING_SCAN):
        # Most entries are others' or not spins: skip them before parsing.
        if entry_field(fields, "kind") != "spin" or (participant_id is not None
                                                and entry_field(fields, "participant") != participant_id):
            continue
        try:
            entry = parse_entry(stream_id, fields)
        except BadEntry:
            continue
        if not is_recorded_spin(entry) or (participant_id is not None and entry.participant_id != participant_id):
            continue
        row = await spin_row(program_id, entry)
        if campaign_id is None or row["campaign_id"] == campaign_id:
            found.append(row)
    return found
