"""The tamper-evident ledger: each program's ledger entries hash-chained in journal order.

What is chained. Entry n of a program (n = 1, 2, ...) stores `seq` = n and
`link` = hex(SHA-256(link_{n-1} || canonical(entry n))), with link_0 the program's genesis,
SHA-256("rw-chain-1:" + program_id). Links are hashed as their 32 raw bytes. The order is
the order of the program's Redis stream (stream ids, compared as numbers), so there is one
order and no fork. Anyone holding the rows can recompute every link (`verify_chain`,
`reward-wallet audit`); editing, deleting or reordering a row breaks the link at that seq.

Canonical bytes, version 1 (`CHAIN_VERSION`): the JSON object, keys sorted, no spaces, of
`v` (1), `stream_id`, `transaction_id`, `program_id`, `kind`, `participant_id` (or null),
`points`, `earned`, `spent`, `reference` (or null), `metadata` (the stored text as a
string), `legs` (a list of [from, to, points]) and `created_at` (integer milliseconds since
the Unix epoch, UTC). Integers are plain JSON integers (all below 2^53, kernel/money.py).
A new encoding gets a new version and a new genesis prefix; rows never change version.

When entries are linked, and why this bound. Several projectors (the worker's, one per API
process where configured, a `reward-wallet worker` elsewhere) may write batches of one program
at once, out of order, and a crash replays a batch, so a batch may only be linked once every
older entry is in SQL. Two ways:

- As it is written (`linked_as_written`, in the batch's own transaction), when the XPENDING
  summary read right after the XREADGROUP that delivered the batch shows it alone pending
  (`batch_alone_pending`): every older entry was acknowledged, so it is in SQL or set aside,
  and none can appear later. The transaction then links the rows only if no older row waits
  for its link and the head is below the batch; otherwise it writes them unlinked. This is the
  common case of one projector keeping up, and it saves the link's separate transaction, its
  read of the rows back and an UPDATE of each row.
- Otherwise after the batch is acknowledged, by `link_program`, which links the projected but
  unlinked rows, in stream-id order, but only those below the oldest entry still in the
  program's stream. The projector deletes an entry from the stream (XDEL) only after its SQL
  transaction committed, and the stream keeps every entry that is pending or not yet
  delivered, so every id below the stream's first entry (or, for an empty stream, up to its
  last generated id, which never goes back) is already in SQL or set aside as a dead letter.
  The bound is read before the rows, so no row below it can still appear.

One writer per program at a time: `chain_heads` holds each program's head (seq, link,
stream id); it is read under a lock (Postgres: SELECT ... FOR UPDATE on the head's row;
SQLite: the write lock BEGIN IMMEDIATE takes) and updated in the same transaction as the
links it extends, so two linkers never both extend the same head. A crash before commit
links nothing; the next call links it again. Whoever acknowledges the last batch links
everything below the new bound, so nothing stays unlinked while the projectors run.

Cost: nothing on the request path and nothing in Redis (Lua has no SHA-256); in the projector
one XPENDING a pass and a SHA-256 an entry, and for a batch not linked as written one
XINFO STREAM and one SQL transaction more. A ledger written before the chain existed is
linked whole by the first pass, in one transaction (updates sent `LINK_BATCH` at a time).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import msgspec
from redis.exceptions import ResponseError

from kernel.replies import reply_text
from kernel.sql_steps import Execute, ExecuteMany, Fetch, Steps, marks, postgres, run_steps
from wallet import keys
from wallet.tables import ChainHead, LedgerEntry

GROUP = "ledger"  # the projector's consumer group (wallet/journal.py imports this module)
CHAIN_VERSION = 1
GENESIS_PREFIX = b"rw-chain-1:"
LINK_BATCH = 1000
AUDIT_PAGE = 2000
log = logging.getLogger("rw.chain")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_encode = msgspec.json.Encoder(order="sorted").encode
_decode_legs = msgspec.json.Decoder(list[tuple[str, str, int]]).decode
ROW_COLUMNS = ("transaction_id", "program_id", "participant_id", "kind", "points", "earned", "spent",
                "reference", "metadata", "legs", "stream_id", "created_at", "seq", "link")


def genesis(program_id: str) -> str:
    return hashlib.sha256(GENESIS_PREFIX + program_id.encode()).hexdigest()


def stream_order(stream_id: str) -> tuple[int, int]:
    """A stream id as the pair Redis orders it by; ids that are not one sort first."""
    ms, _, seq = stream_id.partition("-")
    try:
        return int(ms), int(seq or "0")
    except ValueError:
        return -1, -1


def _milliseconds(value: Any) -> int:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes version 1 hashes for a ledger row (see the module docstring)."""
    return _encode(canonical_fields(row))


def canonical_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The object whose sorted, compact JSON is the row's canonical bytes: what a statement
    shows of each entry, so a verifier re-encodes exactly what was hashed."""
    return {
        "v": CHAIN_VERSION,
        "stream_id": row["stream_id"],
        "transaction_id": row["transaction_id"],
        "program_id": row["program_id"],
        "kind": row["kind"],
        "participant_id": row["participant_id"],
        "points": int(row["points"]),
        "earned": int(row["earned"]),
        "spent": int(row["spent"]),
        "reference": row["reference"],
        "metadata": row["metadata"],
        "legs": [list(leg) for leg in _decode_legs(row["legs"])],
        "created_at": _milliseconds(row["created_at"]),
    }


def encode_canonical(fields: dict[str, Any]) -> bytes:
    """`canonical_fields` as bytes: JSON, keys sorted, no whitespace, UTF-8."""
    return _encode(fields)


def next_link(previous: str, row: dict[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + canonical(row)).hexdigest()


# --- linking (the projector's step) -------------------------------------------------------


async def linkable_bound(client: Any, program_id: str) -> tuple[tuple[int, int], bool]:
    """(bound, inclusive): every entry of the program's stream with an id below the bound
    (or at it, when inclusive) has been acknowledged, so it is in SQL or set aside."""
    stream = keys.journal(program_id)
    # One round trip for what the bound is read from (the stream, its groups, the group's
    # pending summary, in this order); a second only when entries wait undelivered.
    pipe = client.pipeline(transaction=False)
    pipe.xinfo_stream(stream)
    pipe.xinfo_groups(stream)
    pipe.xpending(stream, GROUP)
    info, groups, pending = await pipe.execute(raise_on_error=False)
    if isinstance(info, ResponseError) and "no such key" in str(info).lower():
        return (2**63, 0), True  # no stream at all: nothing is waiting
    for answer in (info, groups):
        if isinstance(answer, Exception):
            raise answer
    info = {reply_text(k): v for k, v in info.items()}
    first = info.get("first-entry")
    last = stream_order(reply_text(info.get("last-generated-id") or "0-0"))
    if not first:
        return last, True
    # An entry still in the stream but acknowledged (a projector killed between its XACK and
    # its XDEL) is in SQL: only an entry pending or not yet delivered holds the chain back.
    group = next((g for g in groups if reply_text(g["name"]) == GROUP), None)
    if group is None:
        return stream_order(reply_text(first[0])), False
    if isinstance(pending, Exception):  # read after the group was found: a real failure
        raise pending
    delivered = reply_text(group["last-delivered-id"])
    bounds = []
    if pending and pending.get("pending"):
        bounds.append(stream_order(reply_text(pending["min"])))
    if stream_order(delivered) < last:
        undelivered = await client.xrange(stream, min="(" + delivered, count=1)
        if undelivered:
            bounds.append(stream_order(reply_text(undelivered[0][0])))
    if not bounds:
        return last, True
    return min(bounds), False


async def link_program(client: Any, program_id: str) -> int:
    """Links what can be linked of a program's projected entries; answers how many."""
    bound, inclusive = await linkable_bound(client, program_id)
    return await link_below(program_id, bound, inclusive)


async def unlinked_programs() -> set[str]:
    """The programs some of whose projected entries wait for their link: one read of the
    partial index `ledger_entries_unlinked`, which holds only those rows (asked program by
    program, a projector's relink pass over 1,000 programs was a thousand queries)."""
    rows = await LedgerEntry.raw(
        f"SELECT DISTINCT program_id FROM {LedgerEntry._meta.tablename} WHERE seq IS NULL").run()
    return {row["program_id"] for row in rows}


async def link_below(program_id: str, bound: tuple[int, int], inclusive: bool) -> int:
    """Links the program's projected entries below `bound` (a `linkable_bound` answer), in one
    transaction (on SQLite in one hop on the writer's thread: kernel/sql_steps.py)."""
    engine = LedgerEntry._meta.db
    return int(await run_steps(engine, functools.partial(_linking, engine, program_id, bound, inclusive)))


def _locked_head(engine: Any, program_id: str) -> Steps:
    """Steps that answer the program's head (seq, link, stream id), made at its genesis if
    it had none, read under the lock that makes its linker the only one (see the module)."""
    p = marks(engine, 4)
    heads = ChainHead._meta.tablename
    yield Execute(f"INSERT INTO {heads} (program_id, seq, link, stream_id) VALUES ({', '.join(p)}) ON CONFLICT DO NOTHING",
                  (program_id, 0, genesis(program_id), ""))
    lock = " FOR UPDATE" if postgres(engine) else ""
    head = yield Fetch(f"SELECT seq, link, stream_id FROM {heads} WHERE program_id = {p[0]}{lock}", (program_id,))
    return int(head[0]["seq"]), head[0]["link"], head[0]["stream_id"]


def _linking(engine: Any, program_id: str, bound: tuple[int, int], inclusive: bool) -> Steps:
    p = marks(engine, 1)
    entries = LedgerEntry._meta.tablename
    seq, link, head_stream = yield from _locked_head(engine, program_id)
    rows = yield Fetch(f"SELECT {', '.join(ROW_COLUMNS[:-2])} FROM {entries} WHERE program_id = {p[0]} AND seq IS NULL",
                       (program_id,))
    head_order = stream_order(head_stream) if head_stream else (-1, -1)
    ready = []
    for row in rows:
        order = stream_order(row["stream_id"])
        if order < bound or (inclusive and order == bound):
            if order <= head_order:
                # Never happens while the stream's ids only grow; audit names it if it does.
                log.error("ledger entry %s of program %s is older than the chain head; left unlinked",
                          row["transaction_id"], program_id)
                continue
            ready.append((order, row))
    if not ready:
        return 0
    ready.sort(key=lambda pair: pair[0])
    rows = [row for _, row in ready]
    links = _chained(seq, link, rows)
    updates = [(n, chained, row["transaction_id"]) for (n, chained), row in zip(links, rows)]
    q = marks(engine, 3)
    update = f"UPDATE {entries} SET seq = {q[0]}, link = {q[1]} WHERE transaction_id = {q[2]} AND seq IS NULL"
    for start in range(0, len(updates), LINK_BATCH):
        yield ExecuteMany(update, updates[start:start + LINK_BATCH])
    yield _head_moved(engine, program_id, links[-1], rows[-1]["stream_id"])
    return len(updates)


def _chained(seq: int, link: str, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Each row's (seq, link) as the chain goes on from the head (`seq`, `link`) through
    `rows`, in order."""
    links = []
    for row in rows:
        seq += 1
        link = next_link(link, row)
        links.append((seq, link))
    return links


def _head_moved(engine: Any, program_id: str, last: tuple[int, str], stream_id: str) -> Execute:
    """The step that moves the program's head to its last linked entry (`last`: its seq and
    link; its stream id)."""
    p = marks(engine, 4)
    return Execute(f"UPDATE {ChainHead._meta.tablename} SET seq = {p[0]}, link = {p[1]}, stream_id = {p[2]} "
                   f"WHERE program_id = {p[3]}", (*last, stream_id, program_id))


def linked_as_written(engine: Any, program_id: str, rows: list[dict[str, Any]]) -> Steps:
    """Steps of a projection batch's own transaction that link `rows` (the batch's ledger
    rows, ROW_COLUMNS but seq and link, in stream order) as they are written, when the
    caller saw the batch alone pending in the stream (`batch_alone_pending`): every older
    entry is in SQL or set aside. Answers each row's (seq, link) and moves the head past
    them; None, writing nothing, when the chain cannot take them now (older rows still wait
    for their link, or the head is at or past the batch: a batch projected again), and the
    batch is then linked after its acknowledgement as any other."""
    seq, link, head_stream = yield from _locked_head(engine, program_id)
    if head_stream and stream_order(head_stream) >= stream_order(rows[0]["stream_id"]):
        return None
    waiting = yield Fetch(f"SELECT 1 AS waiting FROM {LedgerEntry._meta.tablename} "
                          f"WHERE program_id = {marks(engine, 1)[0]} AND seq IS NULL LIMIT 1", (program_id,))
    if waiting:
        return None
    links = _chained(seq, link, rows)
    yield _head_moved(engine, program_id, links[-1], rows[-1]["stream_id"])
    return links


def batch_alone_pending(pending: Any, stream_ids: list[str]) -> bool:
    """Whether an XPENDING summary read right after the XREADGROUP that delivered
    `stream_ids` (in order) shows those entries alone pending: every older entry of the
    stream was acknowledged (an undelivered one is newer than any delivered), so the batch
    can be linked as it is written (`linked_as_written`)."""
    if not stream_ids or not isinstance(pending, dict) or not pending.get("pending"):
        return False
    return (int(pending["pending"]) == len(stream_ids) and reply_text(pending["min"]) == stream_ids[0]
            and reply_text(pending["max"]) == stream_ids[-1])


async def restore_journal_floor(client: Any, program_id: str) -> bool:
    """After a Redis loss (`rebuild`): sets the program's new stream to generate ids after
    the newest entry already in the ledger, so the chain's order goes on from its head even
    if the clock went back. Answers whether it had to move the stream's last id."""
    ends = [await ChainHead.select(ChainHead.stream_id).where(ChainHead.program_id == program_id).first().run()]
    ends += await LedgerEntry.select(LedgerEntry.stream_id).where(
        (LedgerEntry.program_id == program_id) & LedgerEntry.seq.is_null()).run()
    floor = max((row["stream_id"] for row in ends if row and row["stream_id"]), key=stream_order, default=None)
    if floor is None or stream_order(floor) < (0, 0):
        return False
    stream = keys.journal(program_id)
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    info = {reply_text(k): v for k, v in (await client.xinfo_stream(stream)).items()}
    if stream_order(reply_text(info.get("last-generated-id") or "0-0")) >= stream_order(floor):
        return False
    await client.execute_command("XSETID", stream, floor)
    return True


# --- verifying (audit) --------------------------------------------------------------------

Problem = Literal["link_mismatch", "missing_seq", "order", "unlinked", "head_mismatch", "checkpoint_mismatch"]


class ChainProblem(msgspec.Struct, frozen=True):
    """The first place a program's chain does not hold."""

    seq: int
    problem: Problem
    detail: str
    stream_id: str | None = None
    transaction_id: str | None = None


class ChainReport(msgspec.Struct, frozen=True):
    program_id: str
    ok: bool
    entries: int  # linked entries walked
    head_seq: int
    head_link: str
    unlinked: int  # projected entries not yet linked (newer than the head: waiting, not wrong)
    problem: ChainProblem | None = None


def _at(row: dict[str, Any], seq: int, problem: Problem, detail: str) -> ChainProblem:
    return ChainProblem(seq=seq, problem=problem, detail=detail, stream_id=row["stream_id"],
                        transaction_id=row["transaction_id"])


def _walk_page(rows: list[dict[str, Any]], expected: int, link: str, previous: str | None,
               following: dict[str, Any] | None) -> tuple[int, str, str | None, ChainProblem | None]:
    for index, row in enumerate(rows):
        seq = int(row["seq"])
        if seq != expected:
            if seq > expected:
                missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected} to {seq - 1}"
                return expected, link, previous, _at(row, expected, "missing_seq",
                                                     f"{missing} missing before seq {seq} (a row was deleted)")
            return expected, link, previous, _at(row, seq, "missing_seq", f"seq {seq} appears twice")
        if previous is not None and stream_order(row["stream_id"]) <= stream_order(previous):
            return expected, link, previous, _at(row, seq, "order",
                                                 f"stream id {row['stream_id']} is not after {previous} (seq {seq - 1})")
        computed = next_link(link, row)
        if computed != row["link"]:
            after = rows[index + 1] if index + 1 < len(rows) else following
            if after is not None and stream_order(after["stream_id"]) < stream_order(row["stream_id"]):
                return expected, link, previous, _at(
                    row, seq, "order", f"rows reordered: seq {seq} holds stream id {row['stream_id']}, "
                                       f"which comes after seq {seq + 1}'s {after['stream_id']}")
            return expected, link, previous, _at(row, seq, "link_mismatch",
                                                 "the stored link does not match the row's content and the link "
                                                 "before it (the row was edited)")
        link, previous, expected = computed, row["stream_id"], expected + 1
    return expected, link, previous, None


HEAD_REREADS = 100


async def verify_chain(program_id: str) -> ChainReport:
    """Walks a program's chain from genesis, recomputing every link from the rows."""
    columns = [getattr(LedgerEntry, name) for name in ROW_COLUMNS]
    head_seq, head_link = await _head(program_id)
    expected, link, previous, problem = await _walk_on(columns, program_id, 1, genesis(program_id), None)
    # A link commits its rows and the head together, and this walk reads the head first, the
    # rows after: rows past that head may be a link a live projector committed meanwhile. The
    # head read again then stands where they end (or further: walked on); a head that did not
    # move while rows lie past it is a problem, named below (and so is one still moving after
    # HEAD_REREADS reads: each walks on over a link made meanwhile, a few rows, so a live
    # projector never comes near it).
    for _ in range(HEAD_REREADS):
        if problem is not None or expected - 1 <= head_seq:
            break
        moved = await _head(program_id)
        if moved == (head_seq, head_link):
            break
        head_seq, head_link = moved
        if head_seq > expected - 1:
            expected, link, previous, problem = await _walk_on(columns, program_id, expected, link, previous)
    walked = expected - 1
    if problem is None and (walked != head_seq or link != head_link):
        if walked < head_seq:
            problem = ChainProblem(seq=walked + 1, problem="missing_seq",
                                   detail=f"the chain head is at seq {head_seq} but the rows end at seq {walked} "
                                          "(rows were deleted)")
        else:
            problem = ChainProblem(seq=head_seq, problem="head_mismatch",
                                   detail=f"the chain head (seq {head_seq}) does not match the rows "
                                          f"(which end at seq {walked})")
    unlinked_rows = await LedgerEntry.select(LedgerEntry.transaction_id, LedgerEntry.stream_id).where(
        (LedgerEntry.program_id == program_id) & LedgerEntry.seq.is_null()).run()
    if problem is None and previous is not None:
        for row in sorted(unlinked_rows, key=lambda r: stream_order(r["stream_id"])):
            if stream_order(row["stream_id"]) <= stream_order(previous):
                problem = ChainProblem(seq=0, problem="unlinked", stream_id=row["stream_id"],
                                       transaction_id=row["transaction_id"],
                                       detail=f"an entry older than the chain head (stream id {previous}) "
                                              "has no seq: it is outside the chain")
                break
    return ChainReport(program_id=program_id, ok=problem is None, entries=walked, head_seq=head_seq,
                       head_link=head_link, unlinked=len(unlinked_rows), problem=problem)


async def _head(program_id: str) -> tuple[int, str]:
    """The program's chain head: its seq and link (genesis before the first link)."""
    head = await ChainHead.select(ChainHead.seq, ChainHead.link).where(ChainHead.program_id == program_id).first().run()
    return (int(head["seq"]), head["link"]) if head else (0, genesis(program_id))


async def _walk_on(columns: list[Any], program_id: str, expected: int, link: str,
                   previous: str | None) -> tuple[int, str, str | None, ChainProblem | None]:
    """Walks the rows from seq `expected` on, page by page, after `link` and the stream id
    `previous`; answers where the walk stopped, as `_walk_page` does."""
    problem: ChainProblem | None = None
    page = await _page(columns, program_id, expected - 1)
    while page and problem is None:
        nxt = await _page(columns, program_id, int(page[-1]["seq"])) if len(page) == AUDIT_PAGE else []
        expected, link, previous, problem = _walk_page(page, expected, link, previous, nxt[0] if nxt else None)
        page = nxt
    return expected, link, previous, problem


async def _page(columns: list[Any], program_id: str, after: int) -> list[dict[str, Any]]:
    return await LedgerEntry.select(*columns).where(
        (LedgerEntry.program_id == program_id) & (LedgerEntry.seq > after)
    ).order_by(LedgerEntry.seq).limit(AUDIT_PAGE).run()
