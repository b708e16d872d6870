"""Entries and the close: a participant buys tickets with points, or the admin grants free
ones (the alternate method of entry), each in one atomic Redis step
(games/sweepstakes/sweepstakes.lua: open, under the maximum, paid for). Closing stops
entries in Redis first, then freezes the canonical entries file in SQL and publishes its
hash; any read past the close time closes first."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from typing import Any

import msgspec

from catalog.items import Pricing
from games import fairness
from games.sweepstakes import Entry
from games.sweepstakes import keys as swkeys
from games.sweepstakes.design import SweepstakesView, public_row, sweepstakes_row, utc_now, view_of
from games.sweepstakes.tables import Sweepstakes, SweepstakesEntriesFile, SweepstakesFreeEntry
from programs.programs import ProgramView
from wallet import accounts, keys
from kernel import keys as kernel_keys
from kernel.errors import Conflict, DomainError, IdempotencyKeyReused, InsufficientPoints, Invalid, NotFound, ProgramSuspended
from kernel.ids import new_id
from kernel.clock import utc
from kernel.replies import Reply, reply_text
from wallet.store import WalletStore
from kernel.idempotency import Idem


class SweepstakesClosed(DomainError):
    code = "sweepstakes_closed"


class SweepstakesNotOpen(DomainError):
    code = "sweepstakes_not_open"


class LimitReached(DomainError):
    code = "limit_reached"


_ENTRY_ERRORS: dict[str, type[DomainError]] = {
    "sweepstakes_closed": SweepstakesClosed, "sweepstakes_not_open": SweepstakesNotOpen,
    "limit_reached": LimitReached, "insufficient_points": InsufficientPoints, "not_found": NotFound,
    "conflict": Conflict, "idempotency_key_reused": IdempotencyKeyReused,
    "program_suspended": ProgramSuspended,
    "validation_error": Invalid,  # a balance would pass 2^53 - 1 (kernel/money.py)
}


class Entered(msgspec.Struct, frozen=True):
    entry: Entry
    replayed: bool


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


def public_id_of(key: str, participant_id: str) -> str:
    """The participant's pseudonym in one sweepstakes' entries file: an HMAC under a key kept
    secret per sweepstakes, so it is stable, reveals no id, and links no two sweepstakes."""
    return "e" + hmac.new(key.encode(), participant_id.encode(), hashlib.sha256).hexdigest()[:24]


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
    key_list = [idem.key or kernel_keys.no_record(program_id), keys.journal(program_id), keys.accounts(program_id),
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
            count=outcome.count, reason=free_reason, created_at=utc_now())).on_conflict(action="DO NOTHING").run()
    entry = Entry(transaction_id=outcome.tx or "", sweepstakes_id=sweepstakes_id, participant_id=participant_id,
                  count=outcome.count, points=outcome.points, tickets=outcome.tickets, total_tickets=outcome.total,
                  balance=accounts.Balance(available=outcome.available, held=outcome.held))
    return Entered(entry=entry, replayed=bool(outcome.replayed))


async def ensure_participant(program_id: str, participant_id: str) -> None:
    """Free entries name a participant: an unknown one is a 404 like everywhere else."""
    from programs.participants import get_participant

    await get_participant(program_id, participant_id)


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
        Sweepstakes.total_tickets: total, Sweepstakes.entrants: entrants, Sweepstakes.updated_at: utc_now(),
    }).where((Sweepstakes.id == sweepstakes_id) & (Sweepstakes.status == "open")).run()
    return await sweepstakes_row(program_id, sweepstakes_id)


async def current_row(store: WalletStore, program_id: str, sweepstakes_id: str) -> dict[str, Any]:
    """The row, closed first if its close time has passed (closing by time)."""
    row = await sweepstakes_row(program_id, sweepstakes_id)
    if row["status"] == "open" and utc(row["closes_at"]) <= utc_now():
        return await close_row(store, row)
    return row


async def close(store: WalletStore, program: ProgramView, sweepstakes_id: str, pricing: Pricing) -> SweepstakesView:
    row = await close_row(store, await sweepstakes_row(program.id, sweepstakes_id))
    return await view_of(store, program, row, pricing)


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
    if row["status"] == "open" and utc(row["closes_at"]) <= utc_now():
        await close_row(store, row)
