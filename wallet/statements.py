"""A participant's statement: their chain entries over a range of UTC days, each with the
proof that it is in the program's signed chain, checkable offline (`verify`,
`reward-wallet verify statement FILE.json`).

Each entry carries its canonical fields (wallet/chain.py `canonical_fields`: re-encoded as
sorted, compact JSON they are exactly the bytes that were hashed), its seq, its link and
the link before it, so link = SHA-256(previous link || canonical bytes) can be recomputed;
and the Merkle audit path of its link (wallet/merkle.py) to the root of the checkpoint of
its day, by its index in that day (seq - first_seq). The checkpoints are the stored daily
ones where the day has one, and otherwise interim ones signed now over the day's entries
chained so far (wallet/checkpoints.py). The program's public key comes with them; compare
it with the one the program publishes (GET /v1/public/programs/{id}/checkpoints) to know
the statement is the program's and not a look-alike's.

Bounds: at most `MAX_DAYS` days and `MAX_ENTRIES` entries per statement (a narrower range
for more). Entries are in chain order, oldest first. Entries projected but not yet chained
(the last moment's) cannot be proven yet: the statement counts them (`not_yet_chained`).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from typing import Any

import msgspec

from kernel.errors import Invalid
from wallet import merkle
from wallet.chain import ROW_COLUMNS, canonical_fields, encode_canonical, genesis
from wallet.checkpoints import (CheckpointDoc, Link, links_between, rfc3339, day_of, days_after, latest, sign,
                                signature_holds, stored)
from wallet.signing import PublicKey, Sealing, key_id_of, program_key
from wallet.tables import LedgerEntry

FORMAT = "rw-statement-1"
MAX_DAYS = 366
MAX_ENTRIES = 5000


class StatementEntry(msgspec.Struct, frozen=True):
    seq: int
    link: str
    previous_link: str
    entry: dict[str, Any]
    checkpoint: int  # index into the statement's checkpoints
    index: int  # the entry's leaf in that checkpoint's tree: seq - first_seq
    proof: list[str]


class Statement(msgspec.Struct, frozen=True, kw_only=True):
    format: str = FORMAT
    program_id: str
    participant_id: str
    from_day: str = msgspec.field(name="from")
    to_day: str = msgspec.field(name="to")
    made_at: str
    public_key: PublicKey
    checkpoints: list[CheckpointDoc]
    entries: list[StatementEntry]
    not_yet_chained: int = 0


def _range(from_day: date | None, to_day: date | None, today: date) -> tuple[date, date]:
    to_day = to_day or today
    from_day = from_day or max(to_day - timedelta(days=30), date(1970, 1, 1))
    if from_day > to_day:
        raise Invalid("`from` is after `to`", field="from")
    if (to_day - from_day).days + 1 > MAX_DAYS:
        raise Invalid(f"a statement covers at most {MAX_DAYS} days: ask for a shorter range", field="from")
    return from_day, to_day


async def statement(program_id: str, participant_id: str, from_day: date | None, to_day: date | None,
                    sealer: Sealing) -> Statement:
    now = datetime.now(timezone.utc)
    first, last = _range(from_day, to_day, now.date())
    start = datetime.combine(first, datetime.min.time(), timezone.utc)
    end = datetime.combine(last, datetime.min.time(), timezone.utc) + timedelta(days=1)
    mine = (LedgerEntry.program_id == program_id) & (LedgerEntry.participant_id == participant_id) \
        & (LedgerEntry.created_at >= start) & (LedgerEntry.created_at < end)
    rows = await LedgerEntry.select(*[getattr(LedgerEntry, c) for c in ROW_COLUMNS]).where(
        mine & LedgerEntry.seq.is_not_null()).order_by(LedgerEntry.seq).limit(MAX_ENTRIES + 1).run()
    if len(rows) > MAX_ENTRIES:
        raise Invalid(f"more than {MAX_ENTRIES:,} entries from {first} to {last}: ask for a shorter range",
                      field="from")
    waiting = await LedgerEntry.count().where(mine & LedgerEntry.seq.is_null()).run()
    key = await program_key(program_id, sealer)

    by_day: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(day_of(row["stream_id"]), []).append(row)
    days: dict[str, tuple[CheckpointDoc, list[Link]]] = {}
    for day, document in (await stored(program_id, sorted(by_day))).items():
        links = [item async for chunk in links_between(program_id, document.first_seq - 1, document.last_seq)
                 for item in chunk]
        days[day] = (document, links)
    open_days = {day for day in by_day if day not in days}
    if open_days:
        newest = await latest(program_id)
        async for day, links in days_after(program_id, int(newest["last_seq"]) if newest else 0):
            if day in open_days:
                before = await _link_before(program_id, links[0].seq)
                days[day] = (sign(key, program_id, day, "interim", links, before, now), links)
            if day >= max(open_days):
                break

    checkpoints: list[CheckpointDoc] = []
    entries: list[StatementEntry] = []
    for day in sorted(by_day):
        if day not in days:  # the chain moved under us (a rewrite): nothing honest to prove it with
            raise Invalid(f"the entries of {day} have no checkpoint to prove them against")
        document, links = days[day]
        checkpoints.append(document)
        indexes = [int(row["seq"]) - document.first_seq for row in by_day[day]]
        paths = merkle.proofs([item.link for item in links], indexes)
        for row, index in zip(by_day[day], indexes):
            previous = links[index - 1].link if index else document.previous_link
            entries.append(StatementEntry(seq=int(row["seq"]), link=row["link"], previous_link=previous,
                                          entry=canonical_fields(row), checkpoint=len(checkpoints) - 1, index=index,
                                          proof=paths[index]))
    return Statement(program_id=program_id, participant_id=participant_id, from_day=first.isoformat(),
                     to_day=last.isoformat(), made_at=rfc3339(now), public_key=key.public, checkpoints=checkpoints,
                     entries=entries, not_yet_chained=waiting)


async def _link_before(program_id: str, seq: int) -> str:
    if seq <= 1:
        return genesis(program_id)
    row = await LedgerEntry.select(LedgerEntry.link).where(
        (LedgerEntry.program_id == program_id) & (LedgerEntry.seq == seq - 1)).first().run()
    if row is None:
        raise Invalid(f"the chain has no entry at seq {seq - 1}")
    return row["link"]


# --- verifying, offline -------------------------------------------------------------------


def verify(document: Any, expected_key: str | None = None) -> list[str]:
    """Everything that does not hold in a statement, in words (empty: it all holds). With
    `expected_key` (the program's published public key, hex), the statement's key must be it."""
    try:
        decoded = msgspec.convert(document, Statement)
    except msgspec.ValidationError as exc:
        return [f"the statement is malformed: {exc}"]
    problems: list[str] = []
    if decoded.format != FORMAT:
        problems.append(f"unknown statement format {decoded.format!r} (this verifier knows {FORMAT})")
    public = decoded.public_key
    if key_id_of_or_none(public.key) != public.key_id:
        problems.append("the public key does not match its key id (the key was replaced)")
    if expected_key is not None and public.key.lower() != expected_key.strip().lower():
        problems.append("the public key is not the one the program publishes")
    for document_ in decoded.checkpoints:
        name = f"checkpoint {document_.day} ({document_.kind})"
        if document_.key_id != public.key_id:
            problems.append(f"{name}: signed by key {document_.key_id}, not the statement's key {public.key_id}")
        if not signature_holds(document_, public):
            problems.append(f"{name}: the signature does not verify with the public key")
        if document_.program_id != decoded.program_id:
            problems.append(f"{name}: belongs to program {document_.program_id}")
        if document_.count != document_.last_seq - document_.first_seq + 1 or document_.count < 1:
            problems.append(f"{name}: its count does not match its seq range")
    for item in decoded.entries:
        name = f"entry seq {item.seq} (transaction {item.entry.get('transaction_id')})"
        if not 0 <= item.checkpoint < len(decoded.checkpoints):
            problems.append(f"{name}: names no checkpoint of the statement")
            continue
        checkpoint = decoded.checkpoints[item.checkpoint]
        if item.entry.get("program_id") != decoded.program_id or \
                item.entry.get("participant_id") != decoded.participant_id:
            problems.append(f"{name}: is not the statement's participant's entry in this program")
        try:
            computed = hashlib.sha256(bytes.fromhex(item.previous_link) + encode_canonical(item.entry)).hexdigest()
        except (ValueError, TypeError):
            computed = ""
        if computed != item.link:
            problems.append(f"{name}: its content and the link before it do not hash to its link "
                            "(the entry was edited)")
        if item.index != item.seq - checkpoint.first_seq or not 0 <= item.index < checkpoint.count:
            problems.append(f"{name}: its position does not match checkpoint {checkpoint.day}'s seq range")
        elif item.index == 0 and item.previous_link != checkpoint.previous_link:
            problems.append(f"{name}: the link before it is not checkpoint {checkpoint.day}'s previous link")
        if not merkle.verify(item.link, item.index, checkpoint.count, item.proof, checkpoint.merkle_root):
            problems.append(f"{name}: its Merkle proof does not reach the root of checkpoint {checkpoint.day} "
                            f"({checkpoint.kind})")
    return problems


def key_id_of_or_none(public_hex: str) -> str | None:
    try:
        return key_id_of(public_hex)
    except ValueError:
        return None
