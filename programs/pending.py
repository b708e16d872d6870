"""Points that wait, and returned sales.

An earning rule may make its points wait (`pending_days`, `pending_until: "approval"`): the
award moves them from the budget into the participant's pending account as a lot
(wallet/pending.lua, in the award's own call). A lot is released into available by the
worker at or after its minute (`release_due`), or by a manager (`release_lot`); each release
is one journal entry, once.

A returned sale (`reverse_sale`) takes back what the activity's awards earned: a lot still
pending is cancelled, released points are taken back from available up to what is there,
and the rest is owed, paid first by the participant's next earnings (grant, award, release,
spin or sweepstakes points prize; a refund is not earnings). The same wallet call lowers the
points boards the awards raised, by what each counted there. One wallet call per sale,
recorded for years, so a second reversal answers the first, and no rule pays the sale again
(programs/earning.py evaluate skips it).

Feed lines of releases and reversals follow from their journal entries (`feed_of`, a
projector follower wired in api/projection.py), so a crash cannot lose or double one.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from kernel import keys as kernel_keys
from kernel.errors import NotFound, Refused, Unavailable
from kernel.idempotency import Idem
from kernel.ids import new_id
from kernel.clock import utc
from kernel.pages import page_of
from programs import standings
from programs.feed import FEED_COLUMNS, FeedEntry, feed_rows, owed_paid_line, points_text
from programs.programs import ProgramView, get_program, list_program_ids
from programs.rulebook import free_spins_of
from programs.tables import Activity, Award
from wallet.accounts import raise_for
from wallet.journal import JournalEntry, Rows
from wallet.ledger import award_entries, entries_by_transaction
from wallet.store import NO_BOARDS, Outcome, PendingLot, ReversedAward, WalletStore

log = logging.getLogger("rw.pending")


class LotView(msgspec.Struct, frozen=True):
    """A lot as an admin sees it: with its id, to release it."""

    id: str
    points: int
    releases_at: datetime | None
    reason: str
    activity_id: str | None = None


class LotPage(msgspec.Struct, frozen=True):
    items: list[LotView]
    next_cursor: str | None


class Release(msgspec.Struct, frozen=True, omit_defaults=True):
    transaction_id: str
    participant_id: str
    lot_id: str
    points: int
    available: int
    owed_paid: int = 0


class ReleaseRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=200)] | None = None


class ReversalRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    external_id: Annotated[str, Meta(min_length=1, max_length=200)]
    reason: Annotated[str, Meta(min_length=1, max_length=200)]


class ReversalStepView(msgspec.Struct, frozen=True):
    participant_id: str
    points: int  # what the award earned
    cancelled: int  # of a lot still pending
    taken_back: int  # from available
    owed: int  # the rest, paid by the next earnings
    transaction_id: str | None
    free_spins: int = 0  # free-spin tokens the award gave, taken back (those not spun yet)


class ReversalView(msgspec.Struct, frozen=True):
    external_id: str
    activity_id: str
    points: int
    cancelled: int
    taken_back: int
    owed: int
    steps: list[ReversalStepView]
    free_spins: int = 0


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _lot_view(lot: PendingLot) -> LotView:
    return LotView(id=lot.id, points=lot.lot.points, releases_at=_at(lot.lot.releases_at), reason=lot.lot.reason,
                   activity_id=lot.lot.activity or None)


def _position(lot: PendingLot) -> str:
    """The lots' order as a string (soonest release first, approval lots last), for cursors."""
    at = lot.lot.releases_at
    return f"1:{lot.id}" if at is None else f"0:{at:015d}:{lot.id}"


async def lots_of(store: WalletStore, program_id: str, participant_id: str, limit: int = 50,
                  cursor: str | None = None) -> LotPage:
    read = await store.balance_read(program_id, participant_id)
    if read is None:
        raise NotFound("no such participant")
    lots, following = page_of(sorted(read.lots, key=_position), _position, limit, cursor, descending=False)
    return LotPage(items=[_lot_view(lot) for lot in lots], next_cursor=following)


async def _after_release(store: WalletStore, program: ProgramView, outcome: Outcome, participant_id: str,
                         at: datetime) -> None:
    """Released points count on the points boards now, unless they counted when awarded (the
    lot says so; one from before lots kept it goes by the program's word now)."""
    counted = program.pending_counts_on_boards if outcome.on_boards is None else outcome.on_boards
    if not counted:
        await standings.record_points(store.client, program.id, participant_id, standings.UNKNOWN_TEAM,
                                      outcome.points or 0, outcome.tx or "", at)


async def release_lot(store: WalletStore, program_id: str, participant_id: str, lot_id: str, idem: Idem,
                      actor: str = "") -> tuple[Release, bool]:
    """A manager releases a pending lot (an approval lot, or a dated one early). Answers the
    release and whether it was replayed from the idempotency record."""
    program = await get_program(program_id)
    meta = msgspec.json.encode({"released_by": actor or "a manager"}).decode()
    outcome = await store.release(program_id, participant_id, lot_id, new_id("tx"), idem, "approve", meta)
    raise_for(outcome)
    if not outcome.replayed:
        await _after_release(store, program, outcome, participant_id, datetime.now(timezone.utc))
    return Release(transaction_id=outcome.tx or "", participant_id=participant_id, lot_id=lot_id,
                   points=outcome.points or 0, available=outcome.available or 0,
                   owed_paid=outcome.owed_paid or 0), bool(outcome.replayed)


async def release_due(store: WalletStore, program_id: str, now: datetime | None = None) -> int:
    """Releases the program's lots due at `now` (default: the store's clock); answers how
    many it released. Safe beside another worker: a lot leaves once, the other is told so."""
    now_ms = store.clock() // 1_000_000 if now is None else int(now.timestamp() * 1000)
    due = await store.due_lots(program_id, now_ms)
    if not due:
        return 0
    program = await get_program(program_id)
    released = 0
    for participant_id, lot_id in due:
        idem = Idem(key=kernel_keys.idempotency(program_id, "release", lot_id), fingerprint="release")
        outcome = await store.release(program_id, participant_id, lot_id, new_id("tx"), idem, "due", due_at_ms=now_ms)
        if outcome.ok and not outcome.replayed:
            released += 1
            await _after_release(store, program, outcome, participant_id, _at(now_ms) or datetime.now(timezone.utc))
        elif not outcome.ok and outcome.code not in ("already_released", "not_due", "not_found"):
            log.warning("program %s: releasing lot %s of %s refused: %s", program_id, lot_id, participant_id,
                        outcome.detail)
    return released


async def release_all_due(store: WalletStore, now: datetime | None = None) -> int:
    """The worker's pass: every program's due lots (one sorted-set read per program)."""
    total = 0
    for program_id in await list_program_ids():
        total += await release_due(store, program_id, now)
    return total


class _Sale(msgspec.Struct, frozen=True):
    """A returned sale's activity and its awards, each with when it was made."""

    activity_id: str
    occurred_at: datetime
    awards: list[tuple[ReversedAward, datetime]]
    type: str = ""
    participant_id: str = ""
    received_at: datetime | None = None


async def _awards_of(program_id: str, external_id: str) -> _Sale:
    row = await Activity.select(Activity.id, Activity.occurred_at, Activity.type, Activity.participant_id,
                                Activity.received_at).where(
        Activity.program_external == f"{program_id}:{external_id}").first().run()
    if row is None:
        raise NotFound("no activity with that external id")
    awards = await Award.select(Award.transaction_id, Award.participant_id, Award.points, Award.created_at,
                                Award.rule_id, Award.rule_version).where(
        (Award.activity_id == row["id"]) & (Award.program_id == program_id) & (Award.points > 0)
        & Award.transaction_id.is_not_null()).order_by(Award.transaction_id).run()
    # The free-spin tokens each award's rule version gave with its points (programs/earning.py).
    spins = await free_spins_of(program_id, {(a["rule_id"], a["rule_version"]) for a in awards})
    return _Sale(activity_id=row["id"], occurred_at=utc(row["occurred_at"]), type=row["type"],
                 participant_id=row["participant_id"], received_at=utc(row["received_at"]), awards=[
        (ReversedAward(tx=a["transaction_id"], participant_id=a["participant_id"], points=a["points"],
                       spins=spins.get((a["rule_id"], a["rule_version"]), 0)),
         utc(a["created_at"])) for a in awards])


async def _with_boards(store: WalletStore, program: ProgramView, sale: _Sale,
                       specs: list[ReversedAward]) -> list[ReversedAward]:
    """Each award with the points boards it raised, for rw_reverse to lower them by what it
    counted there: an award (and a lot the program counted when awarded) counted in the
    period of the sale, a lot that waited counted when it was released, and a lot still
    pending that did not count yet lowers nothing. Boards created after the event never
    counted it."""
    states = await store.lot_states(program.id, [(s.participant_id, s.tx) for s in specs])
    boards = await standings.points_boards(program.id)
    if not boards.boards:
        return [msgspec.structs.replace(s, pending=st.state == "pending") for s, st in zip(specs, states)]
    created = await standings.boards_created(program.id, [b.id for b in boards.boards])
    teams = await standings.teams_of(program.id, {s.participant_id for s in specs}) if boards.by_team else {}
    released = [(s.tx, st.tx) for s, st in zip(specs, states) if st.state == "released"]
    ledger = await entries_by_transaction(program.id, [tx for pair in released for tx in pair])
    out = []
    for spec, state, (_, awarded_at) in zip(specs, states, sale.awards):
        counted_when: tuple[datetime, datetime] | None = (sale.occurred_at, awarded_at)  # (period of, boards since)
        if state.state == "pending" and state.lot is not None:
            on_boards = state.lot.boards
            if on_boards is None:  # a lot from before lots kept it: the program's word now
                on_boards = program.pending_counts_on_boards
            counted_when = counted_when if on_boards else None
        elif state.state == "released":
            award_entry, release_entry = ledger.get(spec.tx), ledger.get(state.tx)
            on_boards = award_entry.metadata.get("on_boards") if award_entry else None
            if not isinstance(on_boards, bool):
                on_boards = program.pending_counts_on_boards
            if not on_boards:
                # Counted by its release (_after_release), in the release's period; one not
                # projected yet was released a moment ago.
                at = release_entry.created_at if release_entry else datetime.now(timezone.utc)
                counted_when = (at, at)
        scoring = NO_BOARDS
        if counted_when is not None:
            at, since = counted_when
            scoring = boards.counting_at(created, since).scoring(
                spec.participant_id, teams.get(spec.participant_id), f"{spec.tx}:reversed", at)
        out.append(msgspec.structs.replace(spec, boards=scoring, pending=state.state == "pending"))
    return out


async def _awards_in_ledger(program_id: str, transaction_ids: list[str]) -> dict[str, tuple[ReversedAward, datetime]]:
    """Awards paid whose SQL row is missing (rw_reverse's "awards_moved"), from their ledger
    entries: a row written a moment later, or never (its process died first)."""
    entries = await award_entries(program_id, transaction_ids)
    rule_of = {e.transaction_id: (e.metadata.get("rule_id"), e.metadata.get("rule_version")) for e in entries}
    spins = await free_spins_of(program_id, {(r, v) for r, v in rule_of.values()
                                             if isinstance(r, str) and isinstance(v, int)})
    return {e.transaction_id: (ReversedAward(tx=e.transaction_id, participant_id=e.participant_id, points=e.points,
                                             spins=spins.get(rule_of[e.transaction_id], 0)),  # type: ignore[arg-type]
                               e.created_at) for e in entries}


# A lot released, or an award paid, while the sale was read (rw_reverse answers "lot_moved"
# or "awards_moved"): read it again; an award's entry not in the ledger yet is waited for, a
# little longer each time.
MOVED_ATTEMPTS = 6
AWARD_ROW_WAIT = 0.05  # seconds, doubled each time: about 1.5 s in all


async def reverse_sale(store: WalletStore, program_id: str, request: ReversalRequest,
                       actor: str = "") -> tuple[ReversalView, bool]:
    """A returned sale: takes back what its activity's awards earned, and lowers the points
    boards they raised, once. Answers the result and whether it is the first reversal's,
    answered again."""
    program = await get_program(program_id)
    unrecorded: dict[str, tuple[ReversedAward, datetime]] = {}
    for attempt in range(MOVED_ATTEMPTS):
        sale = await _awards_of(program_id, request.external_id)
        rows = {a.tx for a, _ in sale.awards}
        sale = msgspec.structs.replace(sale, awards=[*sale.awards, *(award for tx, award in unrecorded.items()
                                                                     if tx not in rows)])
        activity_id = sale.activity_id
        base: dict[str, Any] = {"reason": request.reason, "external_id": request.external_id,
                                "activity_id": activity_id}
        if actor:
            base["actor"] = actor
        specs = [msgspec.structs.replace(a, metadata=msgspec.json.encode({**base, "lot": a.tx}).decode())
                 for a, _ in sale.awards]
        result = await store.reverse(program_id, activity_id, await _with_boards(store, program, sale, specs))
        if result.code not in ("awards_moved", "lot_moved"):
            break
        if result.code == "awards_moved":
            missing = [tx for tx in (result.missing if isinstance(result.missing, list) else []) if tx not in unrecorded]
            found = await _awards_in_ledger(program_id, missing)
            unrecorded.update(found)
            if len(found) < len(missing) and attempt + 1 < MOVED_ATTEMPTS:
                await asyncio.sleep(AWARD_ROW_WAIT * 2 ** attempt)
    if result.code == "lot_moved":
        raise Unavailable("the sale's pending points are being released right now; retry")
    if result.code == "awards_moved":
        raise Unavailable("an award of the sale is being recorded right now; retry in a few seconds")
    if not result.ok:
        raise Refused(result.code or "conflict", result.detail or "refused")
    # Its activity score too (the points boards went down in the wallet call), in a second
    # call that counts once per board, so a reversal sent again after a failure here
    # finishes it, and one sent again later lowers nothing twice.
    await standings.unrecord_activity(store.client, program_id, sale.participant_id, sale.type, activity_id,
                                      sale.occurred_at, sale.received_at or sale.occurred_at)
    steps = [ReversalStepView(participant_id=s.participant, points=s.points, cancelled=s.cancelled,
                              taken_back=s.taken_back, owed=s.owed, free_spins=s.free_spins,
                              transaction_id=s.tx if (s.cancelled or s.taken_back or s.owed or s.free_spins) else None)
             for s in (result.steps if isinstance(result.steps, list) else [])]
    view = ReversalView(external_id=request.external_id, activity_id=activity_id, points=sum(s.points for s in steps),
                        cancelled=sum(s.cancelled for s in steps), taken_back=sum(s.taken_back for s in steps),
                        owed=sum(s.owed for s in steps), steps=steps, free_spins=sum(s.free_spins for s in steps))
    return view, bool(result.replayed)


# --- feed lines, from the journal (a projector follower) ------------------------------------


def _meta(entry: JournalEntry) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(entry.metadata)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def entry_lines(entry: JournalEntry, point_name: str) -> list[FeedEntry]:
    """The feed lines of a `release` or `reversal` entry, in words."""
    meta = _meta(entry)
    who = entry.participant_id or ""
    lines: list[FeedEntry] = []
    if entry.kind == "release":
        lines.append(FeedEntry(key=f"release:{entry.transaction_id}", participant_id=who, kind="release",
                               text=f"+{entry.earned:,} {point_name} released: {meta.get('reason') or 'points that waited'}",
                               points=entry.earned, reference=entry.reference))
        paid = meta.get("owed_paid")
        if isinstance(paid, int) and paid > 0:
            lines.append(owed_paid_line(entry.transaction_id, who, paid, point_name))
        return lines
    sale = f"sale {meta.get('external_id', '')} returned ({meta.get('reason', '')})"
    for source, _, points in entry.legs:
        if source.startswith("pending:"):
            lines.append(FeedEntry(key=f"reversal:{entry.transaction_id}:cancelled", participant_id=who,
                                   kind="reversal", text=points_text(-points, point_name, f"pending points cancelled, {sale}"),
                                   points=-points, reference=entry.reference))
        elif source.startswith("available:"):
            lines.append(FeedEntry(key=f"reversal:{entry.transaction_id}:taken", participant_id=who,
                                   kind="reversal", text=points_text(-points, point_name, f"taken back, {sale}"),
                                   points=-points, reference=entry.reference))
    tokens = meta.get("tokens")
    if isinstance(tokens, int) and tokens < 0:
        spins = "1 free spin" if tokens == -1 else f"{-tokens:,} free spins"
        lines.append(FeedEntry(key=f"reversal:{entry.transaction_id}:spins", participant_id=who, kind="reversal",
                               text=f"{spins} taken back, {sale}", points=0, reference=entry.reference))
    owed = meta.get("owed")
    if isinstance(owed, int) and owed > 0:
        lines.append(FeedEntry(key=f"reversal:{entry.transaction_id}:owed", participant_id=who, kind="owed",
                               text=f"{owed:,} {point_name} owed, {sale}: your next earnings pay them first",
                               points=0, reference=entry.reference))
    return lines


async def feed_of(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
    """The projector's follower for `release` and `reversal` entries: their feed lines."""
    if not entries:
        return []
    point_name = (await get_program(program_id)).point_name
    rows: list[tuple[Any, ...]] = []
    for entry in entries:
        rows += feed_rows(program_id, entry_lines(entry, point_name), entry.created_at)
    return [Rows(table="feed_items", columns=FEED_COLUMNS, rows=rows)] if rows else []



async def owed_paid_of(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
    """The follower for credits (grants, awards): a line for each that first paid points a
    returned sale left owing."""
    paying = [(e, paid) for e in entries if isinstance(paid := _meta(e).get("owed_paid"), int) and paid > 0]
    if not paying:
        return []
    point_name = (await get_program(program_id)).point_name
    rows: list[tuple[Any, ...]] = []
    for entry, paid in paying:
        rows += feed_rows(program_id, [owed_paid_line(entry.transaction_id, entry.participant_id or "", paid,
                                                      point_name)], entry.created_at)
    return [Rows(table="feed_items", columns=FEED_COLUMNS, rows=rows)]
