"""Projects the Redis journal into the SQL ledger, exactly once per transaction.

Each program's journal is a Redis Stream read through the consumer group `ledger`. A batch
of entries is written to `ledger_entries` and `ledger_postings` in one SQL transaction,
with unique ids and ON CONFLICT DO NOTHING, and only then acknowledged. A crash between
the two replays the batch, and the unique ids make the replay harmless. Entries left
pending by a dead consumer are claimed after `claim_idle_ms`.

Each entry's other SQL rows (a spin's history row and feed line, ...) are written in the
same transaction by "followers": per kind, a function the app wires in at start
(api/projection.py) that answers the rows, each insert ON CONFLICT DO NOTHING on a unique
key, so a replayed batch writes nothing twice. wallet/ knows no follower by name: each
package owns its projection.

An entry the ledger cannot hold (unparseable, or a number past 2^53 - 1 in size: see
kernel/money.py) never stops the projection: it is set aside in the program's dead-letter
stream (`keys.dead_letters`) with the reason, acknowledged, and the entries after it go on.
`/metrics` counts what is set aside and `reward-wallet reconcile` lists it.

The projector hash-chains the entries (wallet/chain.py): a batch that was alone pending when
it was read is linked in its own transaction as it is written; any other after its
acknowledgement (`link_program`), outside the batch's transaction, since linking must wait
for older entries other projectors still hold. A failure to link never holds the ledger back
(the program is linked again at its next pass). A projector killed between acknowledging a
program's last batch and linking it leaves rows no later batch may come to link, so a running
projector also links, every `relink_every` seconds, each program that has unlinked rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import msgspec
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from wallet import keys

from kernel.money import MAX_BALANCE
from kernel.redis_functions import command
from kernel.replies import reply_text
from wallet.chain import GROUP, batch_alone_pending, link_program, linked_as_written, unlinked_programs
from wallet.daily import add_to_totals
from wallet.tables import LedgerEntry, LedgerPosting
from kernel.sql_steps import ExecuteMany, Steps, marks, postgres, run_steps

log = logging.getLogger("rw.journal")


class JournalEntry(msgspec.Struct, frozen=True):
    stream_id: str
    transaction_id: str
    kind: str
    participant_id: str | None
    points: int
    earned: int
    spent: int
    reference: str | None
    metadata: str
    legs: list[tuple[str, str, int]]
    created_at: datetime


_decode_legs = msgspec.json.Decoder(list[tuple[str, str, int]]).decode


class BadEntry(ValueError):
    """A journal entry the ledger cannot hold."""


def _checked(entry: JournalEntry) -> JournalEntry:
    legs = entry.legs
    if (-MAX_BALANCE <= entry.points <= MAX_BALANCE and -MAX_BALANCE <= entry.earned <= MAX_BALANCE
            and -MAX_BALANCE <= entry.spent <= MAX_BALANCE and all(0 <= leg[2] <= MAX_BALANCE for leg in legs)):
        return entry  # every entry Lua writes: the reasons below are worked out only for the rest
    numbers = [entry.points, entry.earned, entry.spent, *(points for _, _, points in legs)]
    if any(abs(n) > MAX_BALANCE for n in numbers):
        raise BadEntry(f"a number is past 2^53 - 1 in size ({max(numbers, key=abs)})")
    if any(points < 0 for _, _, points in legs):
        raise BadEntry("a leg moves a negative amount")
    return entry


def entry_field(fields: dict[Any, Any], name: str) -> str:
    """One field of an entry as read from the stream, as text ("" when it has none): for a
    reader that skips most entries before parsing any."""
    value = fields.get(name.encode(), fields.get(name))
    return reply_text(value) if value is not None else ""


def parse_entry(stream_id: Any, fields: dict[Any, Any]) -> JournalEntry:
    """The entry, or BadEntry saying why the ledger cannot hold it."""
    try:
        return _checked(_parse(stream_id, fields))
    except BadEntry:
        raise
    except (KeyError, ValueError, OverflowError, TypeError, msgspec.DecodeError):
        pass
    # An entry the quick reading refused is read again as text, every field decoded: what it
    # accepts and the reason it gives are the ledger's, whichever client read the entry.
    try:
        return _checked(_parse_text(stream_id, fields))
    except BadEntry:
        raise
    except (KeyError, ValueError, OverflowError, msgspec.DecodeError) as exc:
        raise BadEntry(f"{type(exc).__name__}: {exc}"[:300]) from None


def _parse_text(stream_id: Any, fields: dict[Any, Any]) -> JournalEntry:
    f = {reply_text(k): reply_text(v) for k, v in fields.items()}
    return JournalEntry(
        stream_id=reply_text(stream_id),
        transaction_id=f["tx"],
        kind=f["kind"],
        participant_id=f.get("participant") or None,
        points=int(f.get("points", "0")),
        earned=int(f.get("earned", "0")),
        spent=int(f.get("spent", "0")),
        reference=f.get("ref") or None,
        metadata=f.get("meta", "{}"),
        legs=_decode_legs(f.get("legs", "[]")),
        created_at=datetime.fromtimestamp(int(f["ts"]) / 1000, tz=timezone.utc),
    )


def _parse(stream_id: Any, fields: dict[Any, Any]) -> JournalEntry:
    # The projector's client answers bytes: its fields are read as they come (int() takes
    # bytes), only the fields the entry keeps are decoded, and fields it does not read are
    # not looked at. A client that decodes (tests) answers text keys, turned into the same
    # bytes keys first. Any refusal here is read again as text (parse_entry).
    f = fields if b"tx" in fields else {(k if k.__class__ is bytes else str(k).encode()): v
                                        for k, v in fields.items()}
    get = f.get
    participant, ref, meta = get(b"participant"), get(b"ref"), get(b"meta")
    return JournalEntry(
        stream_id=reply_text(stream_id),
        transaction_id=reply_text(f[b"tx"]),
        kind=reply_text(f[b"kind"]),
        participant_id=reply_text(participant) if participant else None,
        points=int(get(b"points", 0)),
        earned=int(get(b"earned", 0)),
        spent=int(get(b"spent", 0)),
        reference=reply_text(ref) if ref else None,
        metadata="{}" if meta is None else reply_text(meta),
        legs=_decode_legs(reply_text(get(b"legs", b"[]"))),
        created_at=datetime.fromtimestamp(int(f[b"ts"]) / 1000, tz=timezone.utc),
    )


_ENTRY_COLUMNS = ("transaction_id", "program_id", "participant_id", "kind", "points", "earned", "spent",
                  "reference", "metadata", "legs", "stream_id", "created_at")
_POSTING_COLUMNS = ("posting_id", "transaction_id", "program_id", "account", "delta", "leg")
CHUNK = 250


def _insert_sql(engine: Any, table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks(engine, len(columns)))}) " \
        "ON CONFLICT DO NOTHING"


class Rows(msgspec.Struct, frozen=True):
    """Rows a follower adds to a batch: inserted ON CONFLICT DO NOTHING, so each must carry
    a unique key that makes writing it twice a no-op. With `statement` (SQL with `?` marks,
    one row of arguments each) the rows are its arguments instead: a conditional UPDATE
    that changes nothing the second time."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    statement: str = ""


def _numbered(sql: str) -> str:
    """`?` marks as Postgres's `$1, $2, ...`."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


# A follower answers the rows that follow from a program's entries of its kind. It may read
# (outside the batch's transaction); it must not write.
Follower = Callable[[str, list["JournalEntry"]], Awaitable[list[Rows]]]
_followers: dict[str, Follower] = {}


# A follower whose reads failed is asked again a moment later before its rows are left to its
# package's repair: a read that failed once (a Postgres connection dropped, SQLite busy past
# its timeout) mostly answers at once, where the repair (fulfillment/pooled_orders.py `mend`,
# at least a minute later; games/spins.py `complete_unrecorded`) leaves the order or the spin
# out of the phone's reads until it runs. A follower only reads: asking again writes nothing.
# One that failed every attempt is asked once a batch, without waiting, until it answers
# again: a follower that cannot answer (a bug, a database down) does not slow every batch.
FOLLOWER_ATTEMPTS = 3
FOLLOWER_RETRY_SECONDS = 0.05
_failing: set[tuple[str, str]] = set()  # (follower, program) that failed every attempt last time


async def followed(follower: Follower, program_id: str, entries: list[JournalEntry], name: str) -> list[Rows]:
    """`follower`'s rows for `entries`, asked up to FOLLOWER_ATTEMPTS times; none (logged)
    when every attempt failed, so the ledger's own rows still land."""
    attempts = 1 if (name, program_id) in _failing else FOLLOWER_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            rows = await follower(program_id, entries)
        except Exception:
            if attempt == attempts:
                _failing.add((name, program_id))
                log.exception("journal follower %s of program %s failed %d time(s); left to its repair", name,
                              program_id, attempt)
                return []
            log.warning("journal follower %s of program %s failed; asked again", name, program_id, exc_info=True)
            await asyncio.sleep(FOLLOWER_RETRY_SECONDS * attempt)
        else:
            _failing.discard((name, program_id))
            return rows
    return []


def register_followers(followers: Mapping[str, Follower]) -> None:
    """Installs the followers every projector of this process uses unless given its own
    (api/projection.py calls this once at start, in the API and in the worker)."""
    _followers.update(followers)


def entry_row(program_id: str, e: JournalEntry) -> tuple[Any, ...]:
    return (e.transaction_id, program_id, e.participant_id, e.kind, e.points, e.earned, e.spent, e.reference,
            e.metadata, msgspec.json.encode(e.legs).decode(), e.stream_id, e.created_at)


def posting_rows(program_id: str, e: JournalEntry) -> list[tuple[Any, ...]]:
    rows = []
    for number, (source, target, points) in enumerate(e.legs):
        rows.append((f"{e.transaction_id}:{number}:d", e.transaction_id, program_id, source, -points, number))
        rows.append((f"{e.transaction_id}:{number}:c", e.transaction_id, program_id, target, points, number))
    return rows


async def write_batch(program_id: str, entries: list[JournalEntry], more: list[Rows] | None = None,
                      link: bool = False) -> bool:
    """Writes entries and their postings, and the followers' rows (`more`), in one SQL
    transaction, skipping any already there. With `link` (the caller saw the entries alone
    pending in their stream, wallet/chain.py `batch_alone_pending`) the entries are linked
    into the program's chain as they are written when the chain can take them; answers
    whether it did (if not, they are linked after their acknowledgement).

    Rows go straight to the driver's executemany: building Piccolo insert objects cost about
    0.2 ms of CPU per entry, on the API's event loop. On SQLite the transaction is one hop
    on the writer connection's thread (kernel/sql_steps.py): awaited statement by statement,
    the worker's batches held SQLite's one write lock 7 ms on average, and up to 170 ms when
    its loop was busy, while the API's writes waited (the load mix at 250 requests/s)."""
    if not entries and not more:
        return False
    engine = LedgerEntry._meta.db
    return bool(await run_steps(engine, functools.partial(_batch, engine, program_id, entries, more or [], link)))


def _batch(engine: Any, program_id: str, entries: list[JournalEntry], more: list[Rows], link: bool) -> Steps:
    if entries:
        yield from add_to_totals(engine, program_id, entries)
    pg = postgres(engine)
    rows = [entry_row(program_id, e) for e in entries]
    links = None
    if link and entries:
        links = yield from linked_as_written(engine, program_id, [dict(zip(_ENTRY_COLUMNS, r)) for r in rows])
    if links:
        # Linked: a plain INSERT, so a row that were there after all fails the batch (it is
        # claimed again and linked as before) rather than leave a gap in the chain's seq.
        entry_sql = f"INSERT INTO {LedgerEntry._meta.tablename} ({', '.join(_ENTRY_COLUMNS)}, seq, link) " \
            f"VALUES ({', '.join(marks(engine, len(_ENTRY_COLUMNS) + 2))})"
        rows = [(*r, seq, chained) for r, (seq, chained) in zip(rows, links)]
    else:
        entry_sql = _insert_sql(engine, LedgerEntry._meta.tablename, _ENTRY_COLUMNS)
    posting_sql = _insert_sql(engine, LedgerPosting._meta.tablename, _POSTING_COLUMNS)
    for start in range(0, len(entries), CHUNK):
        yield ExecuteMany(entry_sql, rows[start:start + CHUNK])
        yield ExecuteMany(posting_sql, [r for e in entries[start:start + CHUNK] for r in posting_rows(program_id, e)])
    for extra in more:
        if extra.statement:
            sql = _numbered(extra.statement) if pg else extra.statement
        else:
            sql = _insert_sql(engine, extra.table, extra.columns)
        for start in range(0, len(extra.rows), CHUNK):
            yield ExecuteMany(sql, extra.rows[start:start + CHUNK])
    return links is not None


def _messages(reply: Any) -> list[tuple[Any, Any]]:
    """The entries of an XREADGROUP reply that names one stream (none: an empty reply)."""
    return reply[0][1] if reply else []


class JournalProjector:
    def __init__(
        self,
        client: Any,
        consumer: str | None = None,
        batch_size: int = 500,
        claim_idle_ms: int = 15_000,
        pause_before_ack: float = 0.0,
        followers: Mapping[str, Follower] | None = None,
        pass_entries: int = 20_000,
    ) -> None:
        self.client = client
        # None: the process's registered followers, looked up at each batch.
        self.followers = _followers if followers is None else followers
        # Fault injection only (tests kill the process inside this window): 0 in production.
        self.pause_before_ack = pause_before_ack
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self._groups: set[str] = set()
        # Programs whose last linking failed: linked again at their next pass.
        self._unlinked: set[str] = set()
        # About the most entries one pass of `project_due` reads (a backlog after an outage).
        self.pass_entries = pass_entries
        # A running projector's pace per program (`project_due`): when its journal is next
        # read (loop time), and how long it has been left between reads while it was quiet.
        self._pace: dict[str, tuple[float, float]] = {}
        self._claimed_at = float("-inf")
        # Programs whose last claim filled a page: claimed again at the next pass.
        self._claim_again: set[str] = set()

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    async def project_program(self, program_id: str) -> int:
        """Projects what is waiting in one program's journal, first what a dead consumer left
        pending, then new entries; answers how many entries."""
        stream = keys.journal(program_id)
        await self._ensure_group(stream)
        claimed = await self.client.xautoclaim(
            stream, GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=self.batch_size
        )
        return await self._drain(program_id, claimed, None, self.batch_size)

    async def _read(self, stream: str) -> list[tuple[Any, Any]]:
        return _messages(await self.client.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self.batch_size))

    async def _drain(self, program_id: str, claimed: Any, fresh: Any, page: int, pending: Any = None) -> int:
        """Projects what XAUTOCLAIM (`claimed`, at most `page` entries asked) and a read of at
        most `page` entries (`fresh`; None: read here, after the claimed ones are projected)
        handed over, reads on while a read comes back full, then links the batches; answers
        how many entries. `pending`: the stream's XPENDING summary read right after `fresh`
        (wallet/chain.py `batch_alone_pending`): when it shows `fresh` alone pending, that
        batch is linked as it is written, and a drain whose batches all were needs no linking
        step after. A failed command (an exception in place of its reply) hands over nothing:
        its entries stay in the journal for the next read or claim."""
        stream = keys.journal(program_id)
        found = 0
        linked_all = True
        try:
            if claimed is not None and not isinstance(claimed, Exception):
                stale = [(sid, fields) for sid, fields in claimed[1] if fields]
                if stale:
                    await self._project(program_id, stream, stale)
                    found += len(stale)
                    linked_all = False
                if len(claimed[1]) == page:  # more to claim: at the next pass
                    self._claim_again.add(program_id)
            while True:
                if fresh is None:
                    fresh, page, pending = await self._read(stream), self.batch_size, None
                if not fresh or isinstance(fresh, Exception):
                    break
                alone = batch_alone_pending(pending, [reply_text(sid) for sid, _ in fresh])
                linked = await self._project(program_id, stream, fresh, link=alone)
                found += len(fresh)
                linked_all = linked_all and linked
                if len(fresh) < page:
                    break
                fresh = None  # a full page: more may wait
        except BaseException:
            # What did land (a batch before the failure) is linked at the program's next pass,
            # whether or not that pass finds entries.
            self._unlinked.add(program_id)
            raise
        if (found and not linked_all) or program_id in self._unlinked:
            await self._link(program_id)
        return found

    async def _link(self, program_id: str) -> None:
        try:
            await link_program(self.client, program_id)
        except Exception:
            self._unlinked.add(program_id)
            log.exception("linking the ledger chain of program %s failed; retried at its next pass", program_id)
        else:
            self._unlinked.discard(program_id)

    async def _project(self, program_id: str, stream: str, messages: list[tuple[Any, Any]], link: bool = False) -> bool:
        """Projects and acknowledges `messages`; answers whether their entries were linked as
        written (`write_batch`'s `link`)."""
        entries: list[JournalEntry] = []
        bad: list[tuple[str, dict[Any, Any], str]] = []
        for sid, fields in messages:
            try:
                entries.append(parse_entry(sid, fields))
            except BadEntry as exc:
                bad.append((reply_text(sid), fields, str(exc)))
        linked = await write_batch(program_id, entries, await self._follow(program_id, entries), link=link)
        if bad:
            await set_aside(self.client, program_id, bad)
        if self.pause_before_ack:
            await asyncio.sleep(self.pause_before_ack)
        done = [e.stream_id for e in entries] + [sid for sid, _, _ in bad]
        # Acknowledged entries live on in the ledger (or the dead letters); the stream keeps
        # only what is pending. Both in one round trip (the XDEL runs even if the XACK failed:
        # an entry deleted while still pending is claimed empty and dropped).
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(stream, GROUP, *done)
        pipe.xdel(stream, *done)
        await pipe.execute()
        return linked or not entries

    async def _follow(self, program_id: str, entries: list[JournalEntry]) -> list[Rows]:
        """The followers' rows for a batch. A follower that fails (its reads failed) does not
        hold the ledger back: its rows are left out and the entry goes on; the owning
        package repairs them from the ledger (games/spins.py, complete_unrecorded)."""
        by_kind: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            if entry.kind in self.followers:
                by_kind.setdefault(entry.kind, []).append(entry)
        rows: list[Rows] = []
        for kind, of_kind in by_kind.items():
            rows += await followed(self.followers[kind], program_id, of_kind, kind)
        return rows

    async def relink(self, program_ids: list[str]) -> None:
        """Links the programs that have unlinked rows and no batch of their own to link them."""
        waiting = await unlinked_programs()
        for program_id in program_ids:
            if program_id in waiting:
                await self._link(program_id)

    async def project_all(self, program_ids: list[str]) -> int:
        total = 0
        for program_id in program_ids:
            total += await self.project_program(program_id)
        return total

    async def project_due(self, program_ids: list[str], now: float, claim_every: float = 5.0) -> int:
        """One pass of a running projector: the journals of the programs that are due, read in
        one pipeline, then each one that had entries projected and linked.

        Read one by one, every pass cost two round trips per program (XAUTOCLAIM and
        XREADGROUP) whether or not anything had arrived: with 1,000 programs the projector
        kept 0.9 cores busy while the store stood still (bench/projector_idle.py). Now a
        program that had nothing is read again after twice its last wait, from 20 ms up to
        0.25 s (0.5 s on a cluster); one that had entries, at every pass. On a
        single server one XREADGROUP names every due journal and answers only those with
        entries; a cluster refuses keys of several slots in one command, so there each is a
        command of its own, pipelined (kernel/cluster.py routes them without asking a node).
        Every `claim_every` seconds every program is read, and what a dead consumer left
        pending claimed (claimable after `claim_idle_ms`); a full page of claims is followed
        by the next at the next pass. One program's failure leaves the others' work going on:
        what it was handed stays pending and is claimed again."""
        claim = now - self._claimed_at >= claim_every
        if claim:
            self._claimed_at = now
            self._forget_all_but(program_ids)
        one_read = not isinstance(self.client, RedisCluster)
        quiet_max = 0.25 if one_read else 0.5
        due = program_ids if claim else [p for p in program_ids if self._pace.get(p, (now, 0.0))[0] <= now
                                         or p in self._claim_again]
        if not due:
            return 0
        for program_id in due:
            await self._ensure_group(keys.journal(program_id))
        claiming = due if claim else [p for p in due if p in self._claim_again]
        self._claim_again.difference_update(claiming)
        # A pass's reads and claims answer at most about `pass_entries` entries each (after an
        # outage every journal may hold a backlog); a journal whose read came back full is read
        # on alone, a batch at a time (`_drain`), one whose claim did is claimed again next pass.
        page = max(1, min(self.batch_size, self.pass_entries // len(due)))
        pipe = self.client.pipeline(transaction=False)
        for program_id in claiming:
            pipe.xautoclaim(keys.journal(program_id), GROUP, self.consumer, min_idle_time=self.claim_idle_ms,
                            start_id="0-0", count=page)
        if one_read:
            pipe.xreadgroup(GROUP, self.consumer, {keys.journal(p): ">" for p in due}, count=page)
        else:
            for program_id in due:
                pipe.xreadgroup(GROUP, self.consumer, {keys.journal(program_id): ">"}, count=page)
        # Each journal's pending summary right after the read: a batch found alone pending is
        # linked as it is written (`_drain`). Skipped on a claiming pass, whose claims are older.
        summaries = 0 if claim else len(due)
        for program_id in due[:summaries]:
            pipe.xpending(keys.journal(program_id), GROUP)
        replies = await pipe.execute(raise_on_error=False)
        replies, pending_of = replies[:len(replies) - summaries], dict(zip(due, replies[len(replies) - summaries:]))
        claimed = dict(zip(claiming, replies[:len(claiming)]))
        reads = replies[len(claiming):]
        if one_read and isinstance(reads[0], Exception):
            read_of = {p: reads[0] for p in due}
        elif one_read:
            by_stream = {reply_text(stream): messages for stream, messages in reads[0] or []}
            read_of = {p: by_stream.get(keys.journal(p), []) for p in due}
        else:
            read_of = {p: r if isinstance(r, Exception) else _messages(r) for p, r in zip(due, reads)}
        failures = [r for r in replies if isinstance(r, Exception)]
        if failures:
            # NOGROUP after a Redis loss: the groups are made again at the next pass. What did
            # come back is projected all the same.
            self._groups.clear()
            log.warning("%d of %d journal commands failed (%s); read again next pass", len(failures), len(replies),
                        failures[0])
        total = 0
        for program_id in due:
            try:
                found = await self._drain(program_id, claimed.get(program_id), read_of[program_id], page,
                                          pending_of.get(program_id))
            except Exception:  # what it was handed stays pending and is claimed again; read at the next pass
                log.exception("projecting the journal of program %s failed; the others go on", program_id)
                continue
            total += found
            quiet = 0.0 if found else min(quiet_max, max(0.02, 2 * self._pace.get(program_id, (now, 0.0))[1]))
            self._pace[program_id] = (now + quiet, quiet)
        return total

    def _forget_all_but(self, program_ids: list[str]) -> None:
        """Drops the pace of programs no longer projected (deleted, or another worker's)."""
        known = set(program_ids)
        for gone in [p for p in self._pace if p not in known]:
            del self._pace[gone]
        self._claim_again &= known

    async def run(
        self,
        stop: asyncio.Event,
        program_ids: Callable[[], Awaitable[list[str]]],
        idle_sleep: float = 0.02,
        refresh_every: float = 2.0,
        relink_every: float = 5.0,
        pass_every: float = 0.05,
    ) -> None:
        """Projects until `stop` is set, then drains once more so nothing stays unprojected.

        A pass that found entries starts the next one `pass_every` seconds after it began (at
        once when it took longer): each pass writes a program's batches, then links them, and
        every write takes SQLite's one write lock, which the API's requests wait for. Passing
        as soon as anything arrived, the projector held it 40% of the time in the load mix at
        250 requests/s (36 passes a second of a few entries each)."""
        loop = asyncio.get_running_loop()
        ids: list[str] = []
        refreshed = relinked = 0.0
        while True:
            stopping = stop.is_set()
            began = loop.time()
            try:
                if loop.time() - refreshed > refresh_every or stopping:
                    ids = await program_ids()
                    refreshed = loop.time()
                done = await (self.project_all(ids) if stopping else self.project_due(ids, began))
                if not done and loop.time() - relinked > relink_every:
                    await self.relink(ids)
                    relinked = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not kill the projector; it retries
                log.exception("journal projection failed; retrying")
                done = 0
                if stopping:
                    return
                await asyncio.sleep(0.5)
            if stopping:
                return
            pause = idle_sleep if done == 0 else pass_every - (loop.time() - began)
            if pause > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=pause)
                except asyncio.TimeoutError:
                    pass
                except asyncio.CancelledError:
                    if not stop.is_set():
                        raise
                    # Cancelled while stopping: drain once more, then end quietly.
                    with contextlib.suppress(Exception):
                        await self.project_all(await program_ids())
                    return


class DeadLetter(msgspec.Struct, frozen=True):
    stream_id: str  # the entry's id in the journal
    transaction_id: str
    reason: str


async def set_aside(client: Any, program_id: str, bad: list[tuple[str, dict[Any, Any], str]]) -> None:
    """Keeps entries the ledger cannot hold, with why, before they leave the journal. A crash
    before the acknowledgement sets one aside twice: `dead_letters` answers it once."""
    for stream_id, fields, reason in bad:
        log.error("journal entry %s of program %s set aside: %s", stream_id, program_id, reason)
        kept = {reply_text(k): reply_text(v) for k, v in fields.items()}
        await client.xadd(keys.dead_letters(program_id), {**kept, "stream_id": stream_id, "reason": reason})


async def dead_letters(client: Any, program_id: str) -> list[DeadLetter]:
    """The entries set aside for a program, oldest first, each once."""
    seen: dict[str, DeadLetter] = {}
    for _, fields in await client.xrange(keys.dead_letters(program_id)):
        f = {reply_text(k): reply_text(v) for k, v in fields.items()}
        letter = DeadLetter(stream_id=f.get("stream_id", ""), transaction_id=f.get("tx", ""),
                            reason=f.get("reason", ""))
        seen.setdefault(letter.stream_id, letter)
    return list(seen.values())


async def lag(client: Any, program_id: str) -> tuple[int, int | None]:
    """(entries not yet projected, milliseconds timestamp of the oldest of them or None)."""
    length = await client.xlen(keys.journal(program_id))
    if length == 0:
        return 0, None
    return length, await oldest_waiting(client, program_id)


async def oldest_waiting(client: Any, program_id: str) -> int | None:
    """The milliseconds timestamp of the oldest entry not yet projected (an entry leaves the
    journal once its rows are committed), or None: one read, where `lag` needs two."""
    first = await command(client, "XRANGE", keys.journal(program_id), "-", "+", "COUNT", 1)
    return int(reply_text(first[0][0]).split("-")[0]) if first else None
