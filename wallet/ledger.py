"""Reads of the SQL ledger: a participant's history and a program's account totals."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec
from piccolo.query.functions.aggregate import Sum

from kernel.errors import Invalid
from wallet.journal import oldest_waiting
from kernel.pages import decode_cursor, encode_cursor
from kernel.sqlite_pool import Statement, run_statement
from wallet.tables import LedgerEntry, LedgerPosting
from kernel.clock import utc


class TransactionView(msgspec.Struct, frozen=True):
    id: str
    kind: str
    points: int
    created_at: datetime
    reference: str | None = None
    reason: str | None = None


class TransactionPage(msgspec.Struct, frozen=True):
    items: list[TransactionView]
    next_cursor: str | None
    as_of: datetime


class AccountTotal(msgspec.Struct, frozen=True):
    account: str
    points: int


class ProgramLedger(msgspec.Struct, frozen=True):
    budget: int
    participants_available: int
    participants_held: int
    accounts: list[AccountTotal]
    transactions: int
    as_of: datetime
    participants_pending: int = 0  # in pending lots (earning rules that make points wait)


async def as_of(client: Any, program_id: str) -> datetime:
    """The moment up to which the ledger is complete: now, or just before the oldest entry
    still waiting in the journal."""
    oldest_ms = await oldest_waiting(client, program_id)
    if oldest_ms is None:
        return datetime.now(timezone.utc)
    return datetime.fromtimestamp((oldest_ms - 1) / 1000, tz=timezone.utc)


def _reason(metadata: str) -> str | None:
    try:
        value = msgspec.json.decode(metadata)
    except msgspec.DecodeError:
        return None
    reason = value.get("reason") if isinstance(value, dict) else None
    return reason if isinstance(reason, str) else None


# A page of a participant's history, newest first, as plain SQL: Piccolo's select, built and
# compiled for each page, cost about 150 us of the event loop's CPU a page of 20 (the page's read
# 440-550 -> 250-450 us of CPU in process, 16 readers at once, the same rows).
#
# Read from the index ledger_entries_participant_seq (participant_id, seq) alone: the entries
# the chain has not linked yet (seq NULL: the newest, a projection pass old), by id, then the
# linked ones by their place in the chain. A second index keyed by participant, ordered by id,
# served it before (stop 53): every entry written dirtied a page of it too once a program had a
# history, about a seventh of the journal projector's SQL an order.
#
# A page that ends among the unlinked entries carries the chain's newest seq the page saw
# (`s0`): the next page takes the entries unlinked then (seq NULL still, or linked since: past
# s0) below its id, and then the linked ones up to s0, so an entry linked between two pages
# is neither shown twice nor skipped. A page that ends among the linked ones carries its seq.
# A participant's entries of a program, with program_id compared as an expression so that no
# index of it can serve: SQLite would otherwise read the program's entries (every
# participant's, by ledger_entries_program_seq) rather than this participant's by
# ledger_entries_participant_seq. The history here and the expiry replay (programs/expiry.py).
OF_PROGRAM_NOT_INDEXED = "program_id || '' = {}"
_COLUMNS = "id, transaction_id, kind, points, created_at, reference, metadata, seq"


def _part(part: int, condition: str) -> str:
    """The rows of one part of a page (0: unlinked, 1: the chain's) matching `condition`, in
    its order; without its ORDER BY and LIMIT."""
    return (f"SELECT {part} AS part, {_COLUMNS} FROM ledger_entries "
            f"WHERE {OF_PROGRAM_NOT_INDEXED} AND participant_id = {{}} AND {condition}")


_UNLINKED = _part(0, "seq IS NULL") + " ORDER BY id DESC LIMIT {}"
# Two ranges of the index (unlinked still, linked past s0), not a scan of the participant's.
_UNLINKED_THEN = (f"SELECT * FROM ({_part(0, 'seq IS NULL AND id < {}')} UNION ALL {_part(0, 'seq > {} AND id < {}')}) "
                  "AS since ORDER BY id DESC LIMIT {}")
_LINKED = _part(1, "seq IS NOT NULL") + " ORDER BY seq DESC LIMIT {}"
_LINKED_BELOW = _part(1, "seq < {}") + " ORDER BY seq DESC LIMIT {}"
_LINKED_UPTO = _part(1, "seq <= {}") + " ORDER BY seq DESC LIMIT {}"
_BOTH = "SELECT * FROM ({}) AS unlinked UNION ALL SELECT * FROM ({}) AS linked"
_SEQ_OF = "SELECT seq FROM ledger_entries WHERE id = {} AND program_id = {} AND participant_id = {}"
# The columns' ranges on Postgres: id SERIAL (a 4-byte INTEGER), seq BIGINT.
_MAX_ID = 2**31 - 1
_MAX_SEQ = 2**63 - 1


def _number(text: str, most: int) -> int | None:
    """A cursor's number, as this API writes them: ASCII digits, within its column's range."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= most else None


async def _history_cursor(engine: Any, program_id: str, participant_id: str, cursor: str | None) -> tuple[str, int, int]:
    """The page's start: ("first", 0, 0), ("unlinked", below this id, s0) or ("linked", below
    this seq, 0)."""
    after = decode_cursor(cursor)
    if after is None:
        return "first", 0, 0
    kind, _, rest = after.partition(":")
    parts = rest.split(".")
    if kind == "u" and len(parts) == 2:
        below, s0 = _number(parts[0], _MAX_ID), _number(parts[1], _MAX_SEQ)
        if below is not None and s0 is not None:
            return "unlinked", below, s0
    if kind == "s" and len(parts) == 1 and (seq := _number(parts[0], _MAX_SEQ)) is not None:
        return "linked", seq, 0
    if (legacy := _number(after, _MAX_ID)) is not None:
        # A cursor of an earlier build (pages by row id): the page's last entry, its entries
        # after it in this order. Where row ids and the chain's order differ (an entry written
        # by its request before the projector wrote an earlier one), the first page after an
        # upgrade may show such an entry twice or not at all; the pages after it are exact.
        rows = await run_statement(engine, Statement(_SEQ_OF, (legacy, program_id, participant_id)))
        found = rows[0]["seq"] if rows else None
        return ("unlinked", legacy, _MAX_SEQ) if found is None else ("linked", int(found), 0)
    raise Invalid("cursor is not one this API issued", field="cursor")


def _history_statement(program_id: str, participant_id: str, start: tuple[str, int, int], limit: int) -> Statement:
    mine = (program_id, participant_id)
    kind, below, s0 = start
    if kind == "linked":
        return Statement(_LINKED_BELOW, (*mine, below, limit))
    if kind == "unlinked":
        return Statement(_BOTH.format(_UNLINKED_THEN, _LINKED_UPTO),
                         (*mine, below, *mine, s0, below, limit, *mine, s0, limit))
    return Statement(_BOTH.format(_UNLINKED, _LINKED), (*mine, limit, *mine, limit))


async def transactions(
    client: Any, program_id: str, participant_id: str, limit: int = 50, cursor: str | None = None
) -> TransactionPage:
    stamp = await as_of(client, program_id)
    engine = LedgerEntry._meta.db
    start = await _history_cursor(engine, program_id, participant_id, cursor)
    rows = await run_statement(engine, _history_statement(program_id, participant_id, start, limit + 1))
    # Postgres does not promise a UNION ALL's rows in the order of its parts.
    rows = sorted(rows, key=lambda r: (r["part"], -(r["id"] if r["part"] == 0 else r["seq"])))
    items = [
        TransactionView(
            id=r["transaction_id"], kind=r["kind"], points=r["points"], created_at=utc(r["created_at"]),
            reference=r["reference"], reason=_reason(r["metadata"]),
        )
        for r in rows[:limit]
    ]
    more = None
    if len(rows) > limit:
        last = rows[limit - 1]
        if last["part"] == 1:
            more = encode_cursor(f"s:{last['seq']}")
        else:
            # The chain's newest seq this page saw: the first linked row, or the one it was given.
            s0 = start[2] if start[0] == "unlinked" else next((r["seq"] for r in rows if r["part"] == 1), 0)
            more = encode_cursor(f"u:{last['id']}.{s0}")
    return TransactionPage(items=items, next_cursor=more, as_of=stamp)


async def account_sums(program_id: str) -> dict[str, int]:
    """Every account's balance according to the ledger (sum of its postings)."""
    rows = (
        await LedgerPosting.select(LedgerPosting.account, Sum(LedgerPosting.delta).as_alias("total"))
        .where(LedgerPosting.program_id == program_id)
        .group_by(LedgerPosting.account)
        .run()
    )
    return {row["account"]: int(row["total"] or 0) for row in rows}


async def program_ledger(client: Any, program_id: str) -> ProgramLedger:
    stamp = await as_of(client, program_id)
    sums = await account_sums(program_id)
    count = await LedgerEntry.count().where(LedgerEntry.program_id == program_id).run()
    program_accounts = sorted(
        (AccountTotal(account=a, points=p) for a, p in sums.items() if ":" not in a or a.startswith("pool:")),
        key=lambda t: t.account,
    )
    return ProgramLedger(
        budget=sums.get("budget", 0),
        participants_available=sum(p for a, p in sums.items() if a.startswith("available:")),
        participants_held=sum(p for a, p in sums.items() if a.startswith("held:")),
        participants_pending=sum(p for a, p in sums.items() if a.startswith("pending:")),
        accounts=program_accounts,
        transactions=count,
        as_of=stamp,
    )


class EntryFacts(msgspec.Struct, frozen=True):
    """An entry's moment and metadata (decoded), as a later step needs them."""

    created_at: datetime
    metadata: dict[str, Any]


class AwardEntry(msgspec.Struct, frozen=True):
    """An award as its ledger entry tells it: who, how many points (its first leg, from the
    budget into available or pending) and its metadata (rule_id, rule_version, ...)."""

    transaction_id: str
    participant_id: str
    points: int
    created_at: datetime
    metadata: dict[str, Any]


async def award_entries(program_id: str, transaction_ids: list[str]) -> list[AwardEntry]:
    """The projected award entries (kinds award and pending_award) among `transaction_ids`."""
    if not transaction_ids:
        return []
    rows = await LedgerEntry.select(LedgerEntry.transaction_id, LedgerEntry.participant_id, LedgerEntry.legs,
                                    LedgerEntry.metadata, LedgerEntry.created_at).where(
        (LedgerEntry.program_id == program_id) & LedgerEntry.transaction_id.is_in(transaction_ids)
        & LedgerEntry.kind.is_in(["award", "pending_award"])).run()
    found = []
    for row in rows:
        legs = msgspec.json.decode(row["legs"] or "[]")
        meta = msgspec.json.decode(row["metadata"] or "{}")
        if legs and row["participant_id"]:
            found.append(AwardEntry(transaction_id=row["transaction_id"], participant_id=row["participant_id"],
                                    points=int(legs[0][2]), created_at=utc(row["created_at"]),
                                    metadata=meta if isinstance(meta, dict) else {}))
    return found


async def entries_by_transaction(program_id: str, transaction_ids: list[str]) -> dict[str, EntryFacts]:
    """The projected entries among `transaction_ids` (one not projected yet is missing)."""
    found: dict[str, EntryFacts] = {}
    for start in range(0, len(transaction_ids), 500):
        rows = await LedgerEntry.select(LedgerEntry.transaction_id, LedgerEntry.created_at, LedgerEntry.metadata).where(
            (LedgerEntry.program_id == program_id)
            & LedgerEntry.transaction_id.is_in(transaction_ids[start:start + 500])).run()
        for row in rows:
            meta = msgspec.json.decode(row["metadata"] or "{}")
            found[row["transaction_id"]] = EntryFacts(created_at=utc(row["created_at"]),
                                                      metadata=meta if isinstance(meta, dict) else {})
    return found
