"""A participant's spin, the spins they can still make, and their history with proofs.

The spin itself is one call of the Redis function `rw_spin` (games/spins.lua). Redis has no
SHA-256, so this side computes the words of the pair's stream at the nonce it expects
(FAIRNESS.md, "Inside Redis") and passes them with the pair and nonce it used; the function
refuses if either moved, answering the pair as it is now, and we compute again
(`draw_spin`). The pair, the campaign's rules and its sweepstakes' keys are remembered in
process (games/seed_cache.py and below), so a participant's next spin on a campaign is the
gate's call and `rw_spin`'s, nothing else; none of what is remembered needs to be fresh,
because `rw_spin` checks the pair, the nonce and the campaign's status, dates and prices
itself. The function journals the spin's whole record; the journal
projector writes its history row and feed line (games/spin_projection.py), so a spin makes
no SQL write on its request, and the history read merges the spins not projected yet. Only
an item prize writes on the request: its order, keyed by the spin's id, so a retried request
(which replays the recorded answer) places it without doing anything twice, and the sweep
(`complete_unrecorded`) places it when the request died first.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from piccolo.query.methods.select import Select

from catalog.items import Pricing
from fulfillment.redemptions import place_order
from fulfillment.sealing import Sealer
from games import seeds
from games.sweepstakes import keys as swkeys
from games.campaigns import campaign_row
from games.seed_cache import SEEDS, WORDS_PER_NONCE, CachedPair, SeedCache
from games.spin_projection import launched_spec, order_id_of, pending_spins, write_spins
from games.sweepstakes.entries import public_id_of
from games.tables import SeedPair, Spin
from games.wheel import Eligibility, ItemPrize, WheelSpec
from programs.feed import FeedEntry, publish
from programs.participants import get_participant
from programs.programs import ProgramView
from programs.standings import prize_scoring
from wallet import keys
from games import keys as game_keys
from kernel import keys as kernel_keys
from wallet.accounts import Balance, raise_for
from kernel.bounded_map import BoundedMap
from kernel.errors import DomainError, IdempotencyKeyInFlight, Refused, Unavailable
from kernel.ids import new_id
from wallet.journal import JournalEntry, write_batch
from kernel.clock import utc
from kernel.pages import decode_cursor, next_cursor
from kernel.replies import Reply, reply_text
from wallet.store import NO_BOARDS, Boards, Leg, Outcome, WalletStore
from kernel.idempotency import Idem

log = logging.getLogger("rw.spins")

ALGORITHM = "rw-fair-1"
# A spin that loses the race for the nonce retries with the words for this many nonces at
# most (8 words, one HMAC block, each), and gives up (503) after this many tries.
_WINDOW_MAX = 64
_SPIN_ATTEMPTS = 40
# The most nonces a participant's spins keep covering after races (8 words each).
_STICKY_WINDOW = 16
_decode_eligibility = msgspec.json.Decoder(Eligibility).decode


class SeedNow(msgspec.Struct, frozen=True):
    """The pair in use, as a refused rw_spin answers it ("" for what the pair lacks)."""

    pair: str = ""
    sealed: str = ""
    client_seed: str = ""
    nonce: int = 0


class SpinOutcome(Reply, frozen=True):
    """rw_spin's answer."""

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
    at: int = 0  # the spin's moment (ms); 0 in answers recorded before it was carried
    seed: SeedNow | None = None  # with "seed_moved": the pair as Redis holds it now


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


# zone -> (the minute since the epoch it was computed for, the day): every spin needs its
# day, and working it out (ZoneInfo, an aware datetime, strftime) was 4.5% of a spin's API
# time. Today's UTC offsets are whole minutes (quarter hours at the finest), so a zone's
# midnight falls on a minute's boundary and one UTC minute lies within one local day.
_DAYS: BoundedMap[str, tuple[int, str]] = BoundedMap(1024)


def local_day(zone: str, now_ms: int) -> str:
    """The day of the program's calendar a moment falls on: daily caps reset at its midnight."""
    minute = now_ms // 60_000
    known = _DAYS.get(zone)
    if known is not None and known[0] == minute:
        return known[1]
    day = datetime.fromtimestamp(now_ms / 1000, tz=ZoneInfo(zone)).strftime("%Y-%m-%d")
    _DAYS.put(zone, (minute, day))
    return day


async def _check_eligible(program_id: str, participant_id: str, rules: str) -> None:
    if not rules:
        return
    eligibility = _decode_eligibility(rules)
    person = await get_participant(program_id, participant_id)
    refused = eligibility.refusal(person.segment, person.team_id)
    if refused is not None:
        raise NotEligible(f"this campaign is not open to your {refused}")


def _prize_of(spec: WheelSpec, index: int) -> tuple[str, dict[str, Any]]:
    segment = spec.segments[index]
    return segment.label, msgspec.to_builtins(segment.prize)


async def spin(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, participant_id: str,
               campaign_id: str, idem: Idem) -> tuple[SpinView, bool]:
    """Answers the spin and whether it is a replay of an earlier request with the same key."""
    client = store.client
    rules = await _launched_rules(client, program.id, campaign_id)
    # A retry of an answered spin replays it even if the participant's segment or team has
    # changed since: only a new spin is checked.
    if rules.eligibility and not (idem.key and await client.exists(idem.key)):
        await _check_eligible(program.id, participant_id, rules.eligibility)
    extras = await _entries_extras(client, program.id, participant_id, rules.entries)
    # A points prize moves the boards that count prizes (count_prizes) in rw_spin itself.
    boards_for = await prize_scoring(program.id, participant_id) if rules.points else None
    outcome = await draw_spin(store, sealer, program.id, program.timezone, participant_id, campaign_id, idem, extras,
                              boards_for=boards_for)
    if outcome.code == "not_found":  # the campaign's runtime is gone from Redis
        await _refuse_unlaunched(program.id, campaign_id)
    if not outcome.ok:
        raise_for(Outcome(ok=False, code=outcome.code, detail=outcome.detail, replayed=outcome.replayed))
    spec = await launched_spec(program.id, campaign_id)
    if not isinstance(spec.segments[outcome.segment_index].prize, ItemPrize):
        view = await _complete(store, sealer, program, pricing, participant_id, campaign_id, outcome)
        return view, bool(outcome.replayed)
    # An item prize places an order: a replay arriving while the first request is still
    # placing it waits its turn rather than racing it to a second code.
    lock = game_keys.spin_order(program.id, outcome.tx)
    if not await client.set(lock, "1", nx=True, px=30_000):
        raise IdempotencyKeyInFlight("this spin's prize is still being ordered; retry shortly")
    try:
        view = await _complete(store, sealer, program, pricing, participant_id, campaign_id, outcome)
    finally:
        await client.delete(lock)
    return view, bool(outcome.replayed)


class _Rules(msgspec.Struct, frozen=True):
    eligibility: str  # the Eligibility JSON, "" for everyone
    entries: list[dict[str, Any]]  # the segments whose prize is sweepstakes entries (type, k, sw)
    points: bool = False  # whether a segment's prize is points (it may move the boards that count prizes)


# What a spin reads of its campaign's runtime hash before its call, by (program, campaign):
# fixed by the spec once launched (only a draft's spec can change; a relaunch rewrites
# prices, not these), so kept for good. rw_spin reads the status, dates, cost, cap and
# prices from Redis on every call, so a pause, an end or a relaunch holds on the very next
# spin in every process without this cache knowing. Bounded: the oldest out first.
_RULES: BoundedMap[tuple[str, str], _Rules] = BoundedMap(1024)
# A sweepstakes' pseudonym key (`pidk`), by (program, sweepstakes): chosen once when it
# opens and never changed, so kept once seen (an absent one is read again next time).
_PUBLIC_ID_KEYS: BoundedMap[tuple[str, str], str] = BoundedMap(1024)


async def _refuse_unlaunched(program_id: str, campaign_id: str) -> None:
    row = await campaign_row(program_id, campaign_id)  # 404 for an unknown campaign
    raise Refused("campaign_not_active", f"the campaign is {row['status']}")


async def _launched_rules(client: Any, program_id: str, campaign_id: str) -> _Rules:
    rules = _RULES.get((program_id, campaign_id))
    if rules is None:
        status, eligibility, segments = await client.hmget(game_keys.campaign(program_id, campaign_id), "status",
                                                          "eligibility", "segments")
        if status is None:  # never launched (a draft) or unknown
            await _refuse_unlaunched(program_id, campaign_id)
        decoded = msgspec.json.decode(segments or b"[]")
        rules = _Rules(eligibility=reply_text(eligibility) if eligibility else "",
                       entries=[seg for seg in decoded if seg.get("type") == "entries"],
                       points=any(seg.get("type") == "points" for seg in decoded))
        _RULES.put((program_id, campaign_id), rules)
    return rules


async def _entries_extras(client: Any, program_id: str, participant_id: str,
                          segments: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """For segments whose prize is sweepstakes entries: each sweepstakes' keys (config,
    tickets, owners) and the participant's pseudonym in it, in the order of their "k"."""
    extra_keys: list[str] = []
    public_ids: list[str] = []
    for segment in sorted((s for s in segments if s.get("type") == "entries"), key=lambda s: s["k"]):
        config = swkeys.config(program_id, segment["sw"])
        pid_key = _PUBLIC_ID_KEYS.get((program_id, segment["sw"]))
        if pid_key is None:
            raw = await client.hget(config, "pidk")
            pid_key = reply_text(raw) if raw else ""
            if pid_key:
                _PUBLIC_ID_KEYS.put((program_id, segment["sw"]), pid_key)
        extra_keys += [config, swkeys.tickets(program_id, segment["sw"]), swkeys.owners(program_id, segment["sw"])]
        public_ids.append(public_id_of(pid_key, participant_id) if pid_key else "")
    return extra_keys, public_ids


async def draw_spin(store: WalletStore, sealer: Sealer, program_id: str, zone: str, participant_id: str,
                    campaign_id: str, idem: Idem, extras: tuple[list[str], list[str]] = ([], []),
                    cache: SeedCache = SEEDS,
                    boards_for: Callable[[str, datetime], Boards] | None = None) -> SpinOutcome:
    """The atomic part of a spin (rw_spin), retried while the seed pair moves under it.

    The pair comes from `cache` (read from Redis, and committed if the participant has
    none, only the first time). A refusal because the pair moved (a rotation, a new client
    seed, a spin through another process or a concurrent request) answers the pair as it is
    now: the cache takes it and we try again. After losing once, a spin sends the words for
    a window of nonces from the one it expects (up to `_WINDOW_MAX`), so rw_spin finds the
    words for whichever nonce it meets. The participant never sees the race.

    `boards_for` answers, for the spin's id and moment, the leaderboards a points prize moves
    in the same call (programs/standings.py prize_scoring); None moves none."""
    seed_key = game_keys.seed_pair(program_id, participant_id)
    cached = cache.get(program_id, participant_id) or await _load_pair(store, sealer, cache, program_id, participant_id)
    count, window = WORDS_PER_NONCE, cached.window  # words per nonce; nonces covered
    for attempt in range(_SPIN_ATTEMPTS):
        now_ms = store.clock() // 1_000_000
        first = cached.next_nonce
        words = cached.words_for(sealer, first, window, count)
        tx = new_id("spn")
        boards = boards_for(tx, datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)) if boards_for else NO_BOARDS
        key_list = [idem.key or kernel_keys.no_record(program_id), keys.journal(program_id), keys.accounts(program_id),
                    keys.config(program_id), keys.wallet(program_id, participant_id),
                    game_keys.campaign(program_id, campaign_id), seed_key,
                    game_keys.spin_day(program_id, campaign_id, participant_id, local_day(zone, now_ms)), *extras[0],
                    *boards.keys]
        args = [idem.fingerprint, store.ttl, tx, participant_id, campaign_id, cached.pair, first, now_ms,
                count, window, *words, *extras[1], *boards.args]
        outcome = _decode_outcome(await store.fcall("rw_spin", key_list, args))
        if outcome.code == "seed_moved":
            now = outcome.seed
            if now is None or not now.pair or not now.sealed:
                # No pair (Redis was rebuilt from the ledger) or one committed before seeds
                # were sealed in Redis: commit or seal it, then read it.
                cached = await _load_pair(store, sealer, cache, program_id, participant_id)
            else:
                moved_on = now.pair == cached.pair  # the same pair, its nonce moved: a race
                cached = cache.refresh(program_id, participant_id, now.pair, now.sealed, now.client_seed, now.nonce)
                if moved_on:
                    # Cover more nonces, remember it for this participant's next spins (they
                    # spin through other processes too), and let the others through first.
                    window = min(window * 4, _WINDOW_MAX)
                    cached.window = min(max(cached.window * 2, 2), _STICKY_WINDOW)
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
            continue
        if outcome.code == "more_words":
            count *= 4
            continue
        if outcome.ok and not outcome.replayed and outcome.pair == cached.pair:
            cached.spun(outcome.nonce)
            if outcome.nonce == first and cached.window > 1:
                cached.window //= 2  # no one else moved it: go back to fewer words
        return outcome
    raise Unavailable("your spins are arriving faster than they can be drawn; retry in a moment")


async def _load_pair(store: WalletStore, sealer: Sealer, cache: SeedCache, program_id: str,
                     participant_id: str) -> CachedPair:
    """Reads the participant's pair into the cache, committing one first if there is none
    and sealing a clear seed an earlier version left in Redis."""
    for _ in range(_SPIN_ATTEMPTS):
        pair = await seeds.read_pair(store, program_id, participant_id)
        if "hash" not in pair:
            await seeds.current(store, sealer, program_id, participant_id)
            continue
        if "sealed" not in pair:
            await seeds.seal_legacy(store, sealer, program_id, participant_id, pair)
            continue
        return cache.refresh(program_id, participant_id, pair["pair"], pair["sealed"], pair["client_seed"],
                             int(pair["nonce"]))
    raise Unavailable("your seed pair is changing too often right now; retry in a moment")


async def _complete(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                    participant_id: str, campaign_id: str, outcome: SpinOutcome) -> SpinView:
    """The spin's answer; an item prize is ordered (once, whether first time or replayed).
    Its history row and feed line are the journal projector's."""
    spin_id = outcome.tx or ""
    spec = await launched_spec(program.id, campaign_id)
    label, prize = _prize_of(spec, outcome.segment_index)
    segment_prize = spec.segments[outcome.segment_index].prize
    order_id = order_id_of(spin_id) if isinstance(segment_prize, ItemPrize) else None
    cost = spec.cost_points if outcome.paid_with == "points" else 0
    if isinstance(segment_prize, ItemPrize) and order_id:
        await _pay_item(store, sealer, program, pricing, participant_id, segment_prize.item_id, order_id,
                        outcome.prize_value, spec.segments[outcome.segment_index].label)
    proof = Proof(algorithm=ALGORITHM, server_seed_hash=outcome.server_seed_hash, client_seed=outcome.client_seed,
                  nonce=outcome.nonce, weights=outcome.weights, segment_index=outcome.segment_index)
    created_at = datetime.fromtimestamp(outcome.at / 1000, tz=timezone.utc) if outcome.at else \
        datetime.now(timezone.utc)
    return SpinView(id=spin_id, campaign_id=campaign_id, segment_index=outcome.segment_index, label=label,
                    prize=prize, balance=Balance(available=outcome.available, held=outcome.held), proof=proof,
                    paid_with=outcome.paid_with, cost_points=cost, free_spins=outcome.free_spins,
                    created_at=created_at, order_id=order_id)


async def _pay_item(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                    participant_id: str, item_id: str, order_id: str, value: int, label: str) -> None:
    try:
        await place_order(store, sealer, program, pricing, participant_id, item_id, None, source="prize",
                          order_id=order_id)
    except Unavailable:
        raise  # a moment's failure (its SQL write): the item is still owed, by a retry or the sweep
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
        idem=Idem(key=kernel_keys.idempotency(program.id, "prize-substitute", order_id), fingerprint="prize-substitute"),
        wallets=[participant_id], participant_id=participant_id, reference=order_id,
        metadata=msgspec.json.encode({"reason": reason}).decode(), lifetime="earn")
    if outcome.ok and not outcome.replayed:
        await publish(program.id, [FeedEntry(key=f"prize-substitute:{order_id}", participant_id=participant_id,
                                             kind="prize_substitute", text=reason, points=value,
                                             reference=order_id)])


def history_page(program_id: str, participant_id: str, limit: int, after: str | None = None,
                 campaign_id: str | None = None) -> Select:
    """A page of a participant's spins in SQL, newest first, read in that order from the index
    spins_by_participant (participant_id, id): not sorted from every spin they ever made."""
    where = (Spin.program_id == program_id) & (Spin.participant_id == participant_id)
    if after is not None:
        where &= Spin.id < after
    if campaign_id is not None:
        where &= Spin.campaign_id == campaign_id
    return Spin.select().where(where).order_by(Spin.id, ascending=False).limit(limit)


async def my_spins(client: Any, program_id: str, participant_id: str, limit: int = 50, cursor: str | None = None,
                   campaign_id: str | None = None) -> SpinPage:
    """Newest first, each with its proof; a spin made with a since-rotated pair carries the
    revealed server seed, so anyone can recompute it (`reward-wallet verify spin`).

    Spins the projector has not written yet are read from the journal and merged: the
    journal first, then SQL, because the projector deletes an entry from the journal only
    after its row is committed, so every spin is in one or the other (or both)."""
    after = decode_cursor(cursor)
    pending = [r for r in await pending_spins(client, program_id, participant_id, campaign_id)
               if after is None or r["id"] < after]
    stored = await history_page(program_id, participant_id, limit + 1, after, campaign_id).run()
    merged = {r["id"]: r for r in pending}
    merged.update((r["id"], r) for r in stored)
    rows = sorted(merged.values(), key=lambda r: r["id"], reverse=True)[:limit + 1]
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


# Spins in the ledger with no history row: their follower failed, or a projector without
# followers acknowledged them.
_UNRECORDED = """
    SELECT e.transaction_id, e.participant_id, e.kind, e.metadata, e.created_at FROM ledger_entries e
    LEFT JOIN spins s ON s.id = e.transaction_id
    WHERE e.program_id = {} AND e.kind = 'spin' AND e.created_at > {} AND e.created_at < {} AND s.id IS NULL
    ORDER BY e.created_at LIMIT 500
"""
# Item prizes with no order and no points paid instead: their request died after rw_spin.
_UNORDERED = """
    SELECT s.id, s.participant_id, s.campaign_id, s.segment_index, s.prize_value, s.order_id FROM spins s
    LEFT JOIN orders o ON o.id = s.order_id
    LEFT JOIN ledger_entries e ON e.program_id = s.program_id AND e.kind = 'prize_substitute'
        AND e.reference = s.order_id
    WHERE s.program_id = {} AND s.order_id IS NOT NULL AND s.created_at > {} AND s.created_at < {}
        AND o.id IS NULL AND e.transaction_id IS NULL
    ORDER BY s.created_at LIMIT 500
"""


async def complete_unrecorded(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                              settle_seconds: float = 30.0, window_days: float = 2.0) -> int:
    """The repair sweep for spins: writes the history rows (the projector's own rows, from
    the ledger) of spins the projector left without, and places the order of item prizes
    whose request died after the Redis step. Spins younger than `settle_seconds` are left
    to the projector and their own request. Answers how many spins it completed; an item
    prize that cannot be saved this moment (Unavailable) is left for the next sweep."""
    now = datetime.now(timezone.utc)
    since, until = now - timedelta(days=window_days), now - timedelta(seconds=settle_seconds)
    done = 0
    rows = await Spin.raw(_UNRECORDED, program.id, since, until).run()
    if rows:
        entries = [JournalEntry(stream_id="", transaction_id=r["transaction_id"], kind="spin",
                                participant_id=r["participant_id"], points=0, earned=0, spent=0, reference=None,
                                metadata=r["metadata"], legs=[], created_at=utc(r["created_at"])) for r in rows]
        more = await write_spins(program.id, entries)
        await write_batch(program.id, [], more)
        done += sum(len(m.rows) for m in more if m.table == "spins")
    for row in await Spin.raw(_UNORDERED, program.id, since, until).run():
        spec = await launched_spec(program.id, row["campaign_id"])
        segment = spec.segments[row["segment_index"]]
        substitute = kernel_keys.idempotency(program.id, "prize-substitute", row["order_id"])
        if not isinstance(segment.prize, ItemPrize) or await store.client.exists(substitute):
            continue  # paid in points already (its ledger entry not projected yet)
        lock = game_keys.spin_order(program.id, row["id"])
        if not await store.client.set(lock, "1", nx=True, px=30_000):
            continue  # its request is placing it now
        try:
            await _pay_item(store, sealer, program, pricing, row["participant_id"], segment.prize.item_id,
                            row["order_id"], row["prize_value"], segment.label)
        except Unavailable:
            log.warning("spin %s: its item prize could not be ordered just now; the next sweep tries again",
                        row["id"], exc_info=True)
            continue
        finally:
            await store.client.delete(lock)
        done += 1
    return done
