"""A participant's spin, the spins they can still make, and their history with proofs.

The spin itself is one call of the Redis function `rw_spin` (games/spins.lua). Redis has no
SHA-256, so this side reads the participant's seed pair, opens its sealed server seed,
computes the words of its stream at the current nonce (FAIRNESS.md, "Inside Redis") and
passes them with the pair and nonce it used; the function refuses if either moved, and we
compute again (`draw_spin`). Afterwards the spin is written to SQL for the history, and an
item prize becomes an order; both are keyed by the spin's id, so a retried request (which
replays the recorded answer) completes them without doing anything twice.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from catalog.items import Pricing
from fulfillment.redemptions import place_order
from fulfillment.sealing import Sealer
from games import seeds
from games import sweepstakes_keys as swkeys
from games.campaigns import campaign_row
from games.fairness import spin_words
from games.sweepstakes import public_id_of
from games.tables import SeedPair, Spin
from games.wheel import Eligibility, EntriesPrize, FreeSpinPrize, ItemPrize, PointsPrize, WheelSpec
from programs.feed import FeedEntry, publish
from programs.participants import get_participant
from programs.programs import ProgramView
from wallet import keys
from wallet.accounts import Balance, raise_for
from wallet.errors import DomainError, IdempotencyKeyInFlight, Refused, Unavailable
from wallet.ids import new_id
from wallet.moments import utc
from wallet.pages import decode_cursor, next_cursor
from wallet.replies import reply_text
from wallet.store import Idem, Leg, Outcome, WalletStore

ALGORITHM = "rw-fair-1"
# A spin that loses the race for the nonce retries with the words for this many nonces at
# most (8 words, one HMAC block, each), and gives up (503) after this many tries.
_WINDOW_MAX = 64
_SPIN_ATTEMPTS = 40
_decode_spec = msgspec.json.Decoder(WheelSpec).decode
_decode_eligibility = msgspec.json.Decoder(Eligibility).decode
# Launched campaigns' designs, by (program, campaign): a campaign that has been spun was
# launched, and a launched campaign's spec never changes (only a draft's can), so an entry
# never goes stale. Bounded: cleared when full.
_SPECS: dict[tuple[str, str], WheelSpec] = {}
_SPECS_MAX = 1024


class SpinOutcome(msgspec.Struct, frozen=True):
    """rw_spin's answer."""

    s: int
    tx: str | None = None
    available: int = 0
    held: int = 0
    segment_index: int = -1
    weights: list[int] = []
    nonce: int = 0
    pair: str = ""
    server_seed_hash: str = ""
    client_seed: str = ""
    paid_with: str = "points"
    prize_value: int = 0
    free_spins: int = 0
    code: str | None = None
    detail: str | None = None
    replayed: int = 0


_decode_outcome = msgspec.json.Decoder(SpinOutcome).decode


class Proof(msgspec.Struct, frozen=True, omit_defaults=True):
    """FAIRNESS.md's spin proof; `server_seed` once the pair is rotated."""

    algorithm: str
    server_seed_hash: str
    client_seed: str
    nonce: int
    weights: list[int]
    segment_index: int
    server_seed: str | None = None


class SpinView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    campaign_id: str
    segment_index: int
    label: str
    prize: dict[str, Any]
    balance: Balance
    proof: Proof
    paid_with: str  # points | free_spin
    cost_points: int
    free_spins: int
    created_at: datetime
    order_id: str | None = None


class SpinRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    campaign_id: str
    segment_index: int
    label: str
    prize: dict[str, Any]
    proof: Proof
    paid_with: str
    cost_points: int
    created_at: datetime
    order_id: str | None = None


class SpinPage(msgspec.Struct, frozen=True):
    items: list[SpinRecord]
    next_cursor: str | None


class NotEligible(DomainError):
    code = "forbidden"


def local_day(zone: str, now_ms: int) -> str:
    """The day of the program's calendar a moment falls on: daily caps reset at its midnight."""
    return datetime.fromtimestamp(now_ms / 1000, tz=ZoneInfo(zone)).strftime("%Y-%m-%d")


async def _check_eligible(program_id: str, participant_id: str, rules: str) -> None:
    if not rules:
        return
    eligibility = _decode_eligibility(rules)
    person = await get_participant(program_id, participant_id)
    if eligibility.segments is not None and person.segment not in eligibility.segments:
        raise NotEligible("this campaign is not open to your segment")
    if eligibility.team_ids is not None and person.team_id not in eligibility.team_ids:
        raise NotEligible("this campaign is not open to your team")


def _prize_of(spec: WheelSpec, index: int) -> tuple[str, dict[str, Any]]:
    segment = spec.segments[index]
    return segment.label, msgspec.to_builtins(segment.prize)


async def spin(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, participant_id: str,
               campaign_id: str, idem: Idem) -> tuple[SpinView, bool]:
    """Answers the spin and whether it is a replay of an earlier request with the same key."""
    client = store.client
    status, eligibility, segments = await client.hmget(keys.campaign(program.id, campaign_id), "status",
                                                      "eligibility", "segments")
    if status is None:  # never launched (a draft) or unknown
        row = await campaign_row(program.id, campaign_id)  # 404 for an unknown campaign
        raise Refused("campaign_not_active", f"the campaign is {row['status']}")
    # A retry of an answered spin replays it even if the participant's segment or team has
    # changed since: only a new spin is checked.
    if eligibility and not (idem.key and await client.exists(idem.key)):
        await _check_eligible(program.id, participant_id, reply_text(eligibility))
    extras = await _entries_extras(client, program.id, participant_id, msgspec.json.decode(segments or b"[]"))
    # The pair as it is; only a participant without one yet needs `seeds.current` to commit
    # it (a pair with a hash is complete: current() would just read it again).
    pair = await seeds.read_pair(store, program.id, participant_id)
    if "hash" not in pair:
        await seeds.current(store, sealer, program.id, participant_id)
        pair = {}
    outcome = await draw_spin(store, sealer, program.id, program.timezone, participant_id, campaign_id, idem, pair,
                              extras)
    if outcome.s >= 300:
        raise_for(Outcome(s=outcome.s, code=outcome.code, detail=outcome.detail, replayed=outcome.replayed))
    spec = await _launched_spec(program.id, campaign_id)
    if not isinstance(spec.segments[outcome.segment_index].prize, ItemPrize):
        view = await _complete(store, sealer, program, pricing, participant_id, campaign_id, outcome)
        return view, bool(outcome.replayed)
    # An item prize places an order: a replay arriving while the first request is still
    # placing it waits its turn rather than racing it to a second code.
    lock = f"{keys.tag(program.id)}:spin-order:{outcome.tx}"
    if not await client.set(lock, "1", nx=True, px=30_000):
        raise IdempotencyKeyInFlight("this spin's prize is still being ordered; retry shortly")
    try:
        view = await _complete(store, sealer, program, pricing, participant_id, campaign_id, outcome)
    finally:
        await client.delete(lock)
    return view, bool(outcome.replayed)


async def _entries_extras(client: Any, program_id: str, participant_id: str,
                          segments: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """For segments whose prize is sweepstakes entries: each sweepstakes' keys (config,
    tickets, owners) and the participant's pseudonym in it, in the order of their "k"."""
    extra_keys: list[str] = []
    public_ids: list[str] = []
    for segment in sorted((s for s in segments if s.get("type") == "entries"), key=lambda s: s["k"]):
        config = swkeys.config(program_id, segment["sw"])
        pid_key = await client.hget(config, "pidk")
        extra_keys += [config, swkeys.tickets(program_id, segment["sw"]), swkeys.owners(program_id, segment["sw"])]
        public_ids.append(public_id_of(reply_text(pid_key), participant_id) if pid_key else "")
    return extra_keys, public_ids


async def draw_spin(store: WalletStore, sealer: Sealer, program_id: str, zone: str, participant_id: str,
                    campaign_id: str, idem: Idem, first_read: dict[str, str] | None = None,
                    extras: tuple[list[str], list[str]] = ([], [])) -> SpinOutcome:
    """The atomic part of a spin (rw_spin), retried while the seed pair moves under it.
    The participant's seed pair must exist (`seeds.current`); `first_read`, the pair as
    just read, saves the first HGETALL.

    Concurrent spins of one participant advance the nonce under each other. After losing
    once, a spin sends the words for a window of nonces from the one it read (up to
    `_WINDOW_MAX`), so rw_spin finds the words for whichever nonce it meets; a rotation
    (a new pair) is read again. The participant never sees the race."""
    seed_key = keys.seed_pair(program_id, participant_id)
    count, window = 8, 1  # words per nonce; nonces covered
    opened: tuple[str, str] = ("", "")  # (pair id, clear seed): opened once per pair
    for attempt in range(_SPIN_ATTEMPTS):
        pair = first_read or await seeds.read_pair(store, program_id, participant_id)
        first_read = None
        if "hash" not in pair:  # the pair is gone (Redis was rebuilt from the ledger): commit one
            await seeds.current(store, sealer, program_id, participant_id)
            continue
        if "sealed" not in pair:
            await seeds.seal_legacy(store, sealer, program_id, participant_id, pair)
        if opened[0] != pair["pair"]:
            opened = (pair["pair"], seeds.server_seed_of(sealer, pair))
        now_ms = store.clock() // 1_000_000
        nonce = int(pair["nonce"])
        words = [word for step in range(window) for word in spin_words(opened[1], pair["client_seed"], nonce + step,
                                                                        count)]
        key_list = [idem.key or keys.no_record(program_id), keys.journal(program_id), keys.accounts(program_id),
                    keys.config(program_id), keys.wallet(program_id, participant_id),
                    keys.campaign(program_id, campaign_id), seed_key,
                    keys.spin_day(program_id, campaign_id, participant_id, local_day(zone, now_ms)), *extras[0]]
        args = [idem.fingerprint, store.ttl, new_id("spn"), participant_id, campaign_id, pair["pair"], nonce, now_ms,
                count, window, *words, *extras[1]]
        outcome = _decode_outcome(await store.fcall("rw_spin", key_list, args))
        if outcome.code == "seed_moved":
            # A concurrent spin or rotation moved the pair: read it again, cover more nonces,
            # and let the others through before trying again.
            window = min(window * 4, _WINDOW_MAX)
            await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
            continue
        if outcome.code == "more_words":
            count *= 4
            continue
        return outcome
    raise Unavailable("your spins are arriving faster than they can be drawn; retry in a moment")


async def _complete(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                    participant_id: str, campaign_id: str, outcome: SpinOutcome) -> SpinView:
    """Writes the spin to SQL and pays an item prize, once, whether first time or replayed."""
    spin_id = outcome.tx or ""
    spec = await _launched_spec(program.id, campaign_id)
    label, prize = _prize_of(spec, outcome.segment_index)
    segment_prize = spec.segments[outcome.segment_index].prize
    order_id = f"ord_{spin_id.removeprefix('spn_')}" if isinstance(segment_prize, ItemPrize) else None
    cost = spec.cost_points if outcome.paid_with == "points" else 0
    now = datetime.now(timezone.utc)
    inserted = await Spin.insert(Spin(
        id=spin_id, program_id=program.id, campaign_id=campaign_id, participant_id=participant_id,
        pair_id=outcome.pair, server_seed_hash=outcome.server_seed_hash, client_seed=outcome.client_seed,
        nonce=outcome.nonce, weights=msgspec.json.encode(outcome.weights).decode(),
        segment_index=outcome.segment_index, label=label, prize=msgspec.json.encode(prize).decode(),
        prize_value=outcome.prize_value, cost_points=cost, paid_with=outcome.paid_with, order_id=order_id,
        created_at=now)).on_conflict(action="DO NOTHING").returning(Spin.id).run()
    # Inserted now: its created_at is `now`. A replay reads the first answer's moment back.
    stored = None if inserted else await Spin.select(Spin.created_at).where(Spin.id == spin_id).first().run()
    if isinstance(segment_prize, ItemPrize) and order_id:
        await _pay_item(store, sealer, program, pricing, participant_id, segment_prize.item_id, order_id,
                        outcome.prize_value, spec.segments[outcome.segment_index].label)
    if inserted:
        await _announce(program, participant_id, spin_id, spec, outcome.segment_index)
    proof = Proof(algorithm=ALGORITHM, server_seed_hash=outcome.server_seed_hash, client_seed=outcome.client_seed,
                  nonce=outcome.nonce, weights=outcome.weights, segment_index=outcome.segment_index)
    return SpinView(id=spin_id, campaign_id=campaign_id, segment_index=outcome.segment_index, label=label,
                    prize=prize, balance=Balance(available=outcome.available, held=outcome.held), proof=proof,
                    paid_with=outcome.paid_with, cost_points=cost, free_spins=outcome.free_spins,
                    created_at=utc(stored["created_at"]) if stored else now, order_id=order_id)


async def _launched_spec(program_id: str, campaign_id: str) -> WheelSpec:
    """The design of a campaign that rw_spin accepted (so launched, so fixed for good)."""
    spec = _SPECS.get((program_id, campaign_id))
    if spec is None:
        spec = _decode_spec((await campaign_row(program_id, campaign_id))["spec"])
        if len(_SPECS) >= _SPECS_MAX:
            _SPECS.clear()
        _SPECS[(program_id, campaign_id)] = spec
    return spec


async def _pay_item(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                    participant_id: str, item_id: str, order_id: str, value: int, label: str) -> None:
    try:
        await place_order(store, sealer, program, pricing, participant_id, item_id, None, source="prize",
                          order_id=order_id)
    except DomainError:
        # The wheel already paid the prize's price into the prizes account, and the item
        # cannot be ordered now (disabled, pool empty, no partner): the winner gets that
        # price in points instead, once (keyed by the order the spin would have made).
        await _prize_in_points(store, program, participant_id, order_id, value, label)


async def _prize_in_points(store: WalletStore, program: ProgramView, participant_id: str, order_id: str,
                           value: int, label: str) -> None:
    if value <= 0:
        return
    reason = f"{label} was not available: {value:,} {program.point_name} instead"
    outcome = await store.transfer(
        program.id, new_id("tx"), "prize_substitute", [Leg("acct:prizes", "w1:available", value, "-")],
        idem=Idem(key=keys.idempotency(program.id, "prize-substitute", order_id), fingerprint="prize-substitute"),
        wallets=[participant_id], participant_id=participant_id, reference=order_id,
        metadata=msgspec.json.encode({"reason": reason}).decode(), lifetime="earn")
    if outcome.ok and not outcome.replayed:
        await publish(program.id, [FeedEntry(key=f"prize-substitute:{order_id}", participant_id=participant_id,
                                             kind="prize_substitute", text=reason, points=value,
                                             reference=order_id)])


async def _announce(program: ProgramView, participant_id: str, spin_id: str, spec: WheelSpec, index: int) -> None:
    prize = spec.segments[index].prize
    if isinstance(prize, PointsPrize):
        text = f"Won {prize.points:,} {program.point_name} on {spec.name}"
        points: int | None = prize.points
    elif isinstance(prize, ItemPrize):
        text, points = f"Won {spec.segments[index].label} on {spec.name}", None
    elif isinstance(prize, FreeSpinPrize):
        text, points = f"Won {prize.spins} free spin{'s' if prize.spins > 1 else ''} on {spec.name}", None
    elif isinstance(prize, EntriesPrize):
        text = f"Won {prize.entries} sweepstakes entr{'ies' if prize.entries > 1 else 'y'} on {spec.name}"
        points = None
    else:
        return
    await publish(program.id, [FeedEntry(key=f"spin:{spin_id}", participant_id=participant_id, kind="spin",
                                         text=text, points=points, reference=spin_id)])


async def my_spins(program_id: str, participant_id: str, limit: int = 50, cursor: str | None = None,
                   campaign_id: str | None = None) -> SpinPage:
    """Newest first, each with its proof; a spin made with a since-rotated pair carries the
    revealed server seed, so anyone can recompute it (`reward-wallet verify spin`)."""
    after = decode_cursor(cursor)
    where = (Spin.program_id == program_id) & (Spin.participant_id == participant_id)
    if after is not None:
        where &= Spin.id < after
    if campaign_id is not None:
        where &= Spin.campaign_id == campaign_id
    rows = await Spin.select().where(where).order_by(Spin.id, ascending=False).limit(limit + 1).run()
    pair_ids = list({r["pair_id"] for r in rows[:limit]})
    revealed = {}
    if pair_ids:
        revealed = {p["id"]: p["server_seed"] for p in await SeedPair.select(SeedPair.id, SeedPair.server_seed).where(
            SeedPair.id.is_in(pair_ids) & (SeedPair.status == "revealed")).run()}
    items = [SpinRecord(
        id=r["id"], campaign_id=r["campaign_id"], segment_index=r["segment_index"], label=r["label"],
        prize=msgspec.json.decode(r["prize"]), paid_with=r["paid_with"], cost_points=r["cost_points"],
        created_at=utc(r["created_at"]), order_id=r["order_id"],
        proof=Proof(algorithm=ALGORITHM, server_seed_hash=r["server_seed_hash"], client_seed=r["client_seed"],
                    nonce=r["nonce"], weights=msgspec.json.decode(r["weights"]), segment_index=r["segment_index"],
                    server_seed=revealed.get(r["pair_id"]))) for r in rows[:limit]]
    return SpinPage(items=items, next_cursor=next_cursor([r["id"] for r in rows], limit))


_UNRECORDED = """
    SELECT e.transaction_id, e.participant_id, e.metadata FROM ledger_entries e
    LEFT JOIN spins s ON s.id = e.transaction_id
    WHERE e.program_id = {} AND e.kind = 'spin' AND e.created_at > {} AND e.created_at < {} AND s.id IS NULL
    ORDER BY e.created_at LIMIT 500
"""


async def complete_unrecorded(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                              settle_seconds: float = 30.0, window_days: float = 2.0) -> int:
    """Writes the SQL record (and places the item order) of spins whose request died after
    the Redis step: found in the ledger with no spin row. Spins younger than
    `settle_seconds` are left to their own request. Answers how many it completed."""
    now = datetime.now(timezone.utc)
    rows = await Spin.raw(_UNRECORDED, program.id, now - timedelta(days=window_days),
                          now - timedelta(seconds=settle_seconds)).run()
    done = 0
    for row in rows:
        meta = msgspec.json.decode(row["metadata"])
        if "pair" not in meta:
            continue  # journalled before spins carried their record
        outcome = SpinOutcome(
            s=201, tx=row["transaction_id"], segment_index=meta["segment_index"], weights=meta["weights"],
            nonce=meta["nonce"], pair=meta["pair"], server_seed_hash=meta["server_seed_hash"],
            client_seed=meta["client_seed"], paid_with=meta["paid_with"], prize_value=meta["prize_value"])
        await _complete(store, sealer, program, pricing, row["participant_id"], meta["campaign"], outcome)
        done += 1
    return done
