"""Signed checkpoints of each program's hash chain (wallet/chain.py), one per UTC day.

A checkpoint covers the chain entries of one day: their seq range and count, the link just
before the first (`previous_link`, the genesis for seq 1), the last link (`head_link`) and
the Merkle root over the day's links (wallet/merkle.py). It is signed with the program's
Ed25519 key (wallet/signing.py) over its canonical bytes: the JSON object of every field
but `signature`, keys sorted, no whitespace, UTF-8. The object names its format
(`rw-checkpoint-1`) and algorithm (`ed25519`), so a verifier knows what it checks and a
new encoding gets a new name. Consecutive checkpoints join: each one's `previous_link` is
the `head_link` of the one before, and its `first_seq` follows that one's `last_seq`.

Which day. An entry's day is the UTC date of its stream id's milliseconds (the Redis clock
when the entry was journaled). Stream ids only grow, so each day is one contiguous seq
range. UTC, not the program's time zone: a program may change its zone, and a day that
moved after its checkpoint was signed would no longer match it; UTC days never move.

When. A daily checkpoint is made after its day ended and all of its entries are chained:
the worker's `checkpoints` task (api/background.py) links what it can (the chain's own
bound) and then checkpoints every day before the cutoff: the day of the program's oldest
journal entry still in Redis (everything older has left the stream, so it is in SQL and
linked); with nothing waiting, the later of the stream's last id and the clock less
`CLOCK_MARGIN` (an entry journaled later gets an id at least that). Idempotent: a day's
row is unique, a second maker writes nothing, and a run continues after the newest
stored day. A day with no entries has no checkpoint.

Interim checkpoints. A statement's entries newer than the last daily checkpoint are proven
against a checkpoint of their day as it stands, signed when the statement is made
(`kind` "interim"). They are not stored: the day is still growing, the next statement
signs a newer one, and signing costs a fraction of a millisecond.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec
from piccolo.query.methods.select import First

from kernel.pages import decode_cursor, next_cursor
from wallet import merkle
from wallet.chain import ChainProblem, ChainReport, genesis, link_below, linkable_bound, stream_order, verify_chain
from wallet.signing import ProgramKey, PublicKey, Sealing, program_key, public_key, verify_signature
from wallet.tables import Checkpoint, LedgerEntry

FORMAT = "rw-checkpoint-1"
ALGORITHM = "ed25519"
CLOCK_MARGIN_MS = 5 * 60 * 1000
PAGE = 5000
_encode = msgspec.json.Encoder(order="sorted").encode
Kind = Literal["daily", "interim"]


class CheckpointDoc(msgspec.Struct, frozen=True, kw_only=True):
    """A signed checkpoint as it is published and put in statements."""

    format: str = FORMAT
    algorithm: str = ALGORITHM
    program_id: str
    day: str  # YYYY-MM-DD, UTC
    kind: Kind
    first_seq: int
    last_seq: int
    count: int
    previous_link: str
    head_link: str
    merkle_root: str
    key_id: str
    signed_at: str  # RFC 3339, UTC, milliseconds
    signature: str  # hex, Ed25519 over signed_bytes()


class CheckpointPage(msgspec.Struct, frozen=True):
    items: list[CheckpointDoc]
    next_cursor: str | None
    public_key: PublicKey


class Link(msgspec.Struct, frozen=True):
    seq: int
    link: str
    stream_id: str


def signed_bytes(document: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers: every field but `signature`."""
    return _encode({k: v for k, v in document.items() if k != "signature"})


def signature_holds(document: CheckpointDoc, public: PublicKey) -> bool:
    return verify_signature(public, signed_bytes(msgspec.to_builtins(document)), document.signature)


def day_of(stream_id: str) -> str:
    ms, _ = stream_order(stream_id)
    return datetime.fromtimestamp(max(ms, 0) / 1000, tz=timezone.utc).date().isoformat()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign(key: ProgramKey, program_id: str, day: str, kind: Kind, links: list[Link], previous_link: str,
         signed_at: datetime) -> CheckpointDoc:
    """The checkpoint of `links` (one day's, in seq order, contiguous), signed."""
    fields = {"format": FORMAT, "algorithm": ALGORITHM, "program_id": program_id, "day": day, "kind": kind,
              "first_seq": links[0].seq, "last_seq": links[-1].seq, "count": len(links),
              "previous_link": previous_link, "head_link": links[-1].link,
              "merkle_root": merkle.root([item.link for item in links]), "key_id": key.public.key_id,
              "signed_at": rfc3339(signed_at)}
    return CheckpointDoc(**fields, signature=key.sign(_encode(fields)))


# --- reading the chain by day -------------------------------------------------------------


async def links_between(program_id: str, after_seq: int,
                        through_seq: int | None = None) -> AsyncIterator[list[Link]]:
    """The program's linked entries after `after_seq` (through `through_seq`), in seq order,
    a page at a time."""
    while True:
        where = (LedgerEntry.program_id == program_id) & (LedgerEntry.seq > after_seq)
        if through_seq is not None:
            where &= LedgerEntry.seq <= through_seq
        rows = await LedgerEntry.select(LedgerEntry.seq, LedgerEntry.link, LedgerEntry.stream_id).where(
            where).order_by(LedgerEntry.seq).limit(PAGE).run()
        if not rows:
            return
        yield [Link(seq=int(r["seq"]), link=r["link"], stream_id=r["stream_id"]) for r in rows]
        if len(rows) < PAGE:
            return
        after_seq = int(rows[-1]["seq"])


async def days_after(program_id: str, after_seq: int, before_day: str | None = None,
                     ) -> AsyncIterator[tuple[str, list[Link]]]:
    """Each UTC day's links after `after_seq`, day by day, stopping at `before_day` (a day
    at or after it is not yielded: it may not be complete)."""
    day: str | None = None
    links: list[Link] = []
    async for page in links_between(program_id, after_seq):
        for item in page:
            item_day = day_of(item.stream_id)
            if before_day is not None and item_day >= before_day:
                if links and day is not None:
                    yield day, links
                return
            if item_day != day:
                if links and day is not None:
                    yield day, links
                day, links = item_day, []
            links.append(item)
    if links and day is not None:
        yield day, links


async def latest(program_id: str) -> dict[str, Any] | None:
    return await latest_query(program_id).run()


def latest_query(program_id: str) -> First:
    """A program's last checkpoint, read from the end of the index chain_checkpoints_latest
    (program_id, last_seq): the program gains a row a day for good."""
    return Checkpoint.select().where(Checkpoint.program_id == program_id).order_by(
        Checkpoint.last_seq, ascending=False).first()


# --- making daily checkpoints (the worker's task) -----------------------------------------


async def cutoff_day(client: Any, program_id: str, now_ms: int | None = None) -> tuple[str, tuple[int, int], bool]:
    """The first day that may still be incomplete (every day before it is over and chained
    once the chain is linked up to the answered bound), and that bound."""
    bound, inclusive = await linkable_bound(client, program_id)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if bound == (2**63, 0):  # no stream at all: whatever comes next, comes from now on
        cutoff = now_ms - CLOCK_MARGIN_MS
    elif inclusive:  # nothing waiting: the next entry's id is after the last one and the clock
        cutoff = max(bound[0], now_ms - CLOCK_MARGIN_MS)
    else:  # the oldest entry still waiting
        cutoff = bound[0]
    day = datetime.fromtimestamp(max(cutoff, 0) / 1000, tz=timezone.utc).date().isoformat()
    return day, bound, inclusive


async def make_daily(client: Any, sealer: Sealing, program_id: str, now_ms: int | None = None) -> int:
    """Links the program's chain as far as it can, then signs and stores a checkpoint for
    every finished day after the newest one stored; answers how many it stored."""
    before_day, bound, inclusive = await cutoff_day(client, program_id, now_ms)
    await link_below(program_id, bound, inclusive)
    last = await latest(program_id)
    after_seq = int(last["last_seq"]) if last else 0
    previous = last["head_link"] if last else genesis(program_id)
    key: ProgramKey | None = None
    made = 0
    async for day, links in days_after(program_id, after_seq, before_day):
        if last is not None and day <= last["day"]:
            # Never while stream ids only grow; audit names it if it happens.
            raise ValueError(f"program {program_id}: entries after the checkpoint of {last['day']} are dated {day}")
        key = key or await program_key(program_id, sealer)
        document = sign(key, program_id, day, "daily", links, previous, datetime.now(timezone.utc))
        await Checkpoint.insert(Checkpoint(
            program_day=f"{program_id}:{day}", program_id=program_id, day=day, first_seq=document.first_seq,
            last_seq=document.last_seq, count=document.count, previous_link=document.previous_link,
            head_link=document.head_link, merkle_root=document.merkle_root, key_id=document.key_id,
            signed_at=datetime.fromisoformat(document.signed_at.replace("Z", "+00:00")),
            signature=document.signature)).on_conflict(action="DO NOTHING").run()
        previous = document.head_link
        made += 1
    return made


async def make_all(client: Any, sealer: Sealing, program_ids: list[str]) -> int:
    made = 0
    for program_id in program_ids:
        made += await make_daily(client, sealer, program_id)
    return made


# --- reading stored checkpoints -----------------------------------------------------------


def document_of(row: dict[str, Any]) -> CheckpointDoc:
    signed_at = row["signed_at"]
    if isinstance(signed_at, str):
        signed_at = datetime.fromisoformat(signed_at)
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=timezone.utc)
    return CheckpointDoc(program_id=row["program_id"], day=row["day"], kind="daily", first_seq=int(row["first_seq"]),
                         last_seq=int(row["last_seq"]), count=int(row["count"]), previous_link=row["previous_link"],
                         head_link=row["head_link"], merkle_root=row["merkle_root"], key_id=row["key_id"],
                         signed_at=rfc3339(signed_at), signature=row["signature"])


async def stored(program_id: str, days: list[str]) -> dict[str, CheckpointDoc]:
    if not days:
        return {}
    rows = await Checkpoint.select().where((Checkpoint.program_id == program_id) & Checkpoint.day.is_in(days)).run()
    return {r["day"]: document_of(r) for r in rows}


async def page(program_id: str, sealer: Sealing, limit: int, cursor: str | None) -> CheckpointPage:
    """Stored checkpoints, newest day first, with the key that signed them."""
    after = decode_cursor(cursor)
    where = Checkpoint.program_id == program_id
    if after is not None:
        where &= Checkpoint.day < after
    rows = await Checkpoint.select().where(where).order_by(Checkpoint.day, ascending=False).limit(limit + 1).run()
    key = await program_key(program_id, sealer)
    return CheckpointPage(items=[document_of(r) for r in rows[:limit]],
                          next_cursor=next_cursor([r["day"] for r in rows], limit), public_key=key.public)


# --- audit: do the stored checkpoints still match the chain? ------------------------------


async def check_stored(program_id: str) -> ChainProblem | None:
    """The first stored checkpoint that no longer matches the chain's rows or its signature."""
    public = await public_key(program_id)
    previous_head, expected_first = genesis(program_id), 1
    rows = await Checkpoint.select().where(Checkpoint.program_id == program_id).order_by(Checkpoint.first_seq).run()
    for row in rows:
        document = document_of(row)
        where = f"the checkpoint of {document.day} (seqs {document.first_seq} to {document.last_seq})"

        def broken(why: str) -> ChainProblem:
            return ChainProblem(seq=document.first_seq, problem="checkpoint_mismatch", detail=f"{where} {why}")

        if public is None or not signature_holds(document, public):
            return broken("does not carry a valid signature of the program's key (the checkpoint was altered)")
        if document.first_seq != expected_first or document.previous_link != previous_head:
            return broken("does not follow the checkpoint before it")
        links = [item async for chunk in links_between(program_id, document.first_seq - 1, document.last_seq)
                 for item in chunk]
        if [item.seq for item in links] != list(range(document.first_seq, document.last_seq + 1)):
            return broken(f"counts {document.count} entries but the chain now holds {len(links)} in that range")
        if links[-1].link != document.head_link:
            return broken("no longer matches the chain: its head link differs (the chain was rewritten after it "
                          "was signed)")
        if merkle.root([item.link for item in links]) != document.merkle_root:
            return broken("no longer matches the chain: its Merkle root differs (the chain was rewritten after it "
                          "was signed)")
        if any(day_of(item.stream_id) != document.day for item in links):
            return broken("no longer matches the chain: an entry in its range is dated another day")
        previous_head, expected_first = document.head_link, document.last_seq + 1
    return None


async def audit(program_id: str) -> ChainReport:
    """`reward-wallet audit` for one program: the chain from genesis, then its checkpoints."""
    report = await verify_chain(program_id)
    if report.problem is not None:
        return report
    problem = await check_stored(program_id)
    return report if problem is None else msgspec.structs.replace(report, ok=False, problem=problem)
