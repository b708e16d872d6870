"""Participant imports from a spreadsheet: thousands of rows in a few queries per 500, and
large files as a job the worker runs with its progress on record.

A row is one participant by `external_id`: a new one is created with a wallet, an existing
one gets the row's non-empty fields. A bad row is reported with its spreadsheet row number
and the rest goes on. The rules are the single upsert's (programs/participants.py): an email
belongs to one participant of a program whatever its case, a team must be the program's.

Rows go in chunks: one read of the chunk's existing participants, one of the emails it
names, one of its teams, one insert of its new participants and one update per changed row.
A row-at-a-time import spent about 13 ms a row here, and its email check read the program's
participants again for each row; 50,000 rows took minutes that grew with the program.

An import job (`queue_import`) keeps the file in SQL, and `run_due` (a worker task) imports
it chunk by chunk, writing how many rows are done after each; a worker that dies mid-file
leaves the job to the next one after its lease, which starts again from the last recorded
chunk (every row is an upsert, so a chunk done twice changes nothing).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any, Literal

import msgspec

from kernel.errors import Invalid, NotFound
from kernel.ids import new_id
from kernel.sqlite_pool import placeholders
from programs.participants import (ImportedRow, ImportReport, ImportRowError, NewParticipant, ParticipantChanges,
                                   email_key, update_participant, upsert_participant)
from programs.spreadsheet import Row, describe, read_sheet
from programs.tables import Participant, ParticipantImport, Team
from wallet.store import WalletStore

CHUNK = 500
CSV_FIELDS = ("external_id", "display_name", "email", "team_id", "segment", "enrolled_at")
# The errors a job keeps for the page; the count is always whole.
ERRORS_KEPT = 1000
LEASE = timedelta(minutes=2)
# A job a worker failed on stays "running" and is taken up again after its lease.
JobStatus = Literal["queued", "running", "done"]


class ImportJob(msgspec.Struct, frozen=True):
    id: str
    program_id: str
    status: JobStatus
    total_rows: int
    done_rows: int
    created: int
    updated: int
    unchanged: int
    error_count: int
    errors: list[ImportRowError]
    file_name: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    failure: str | None = None


Progress = Callable[[int, "Tally"], Awaitable[None]]


class Tally:
    """What an import has done so far."""

    def __init__(self, created: int = 0, updated: int = 0, unchanged: int = 0,
                 errors: list[ImportRowError] | None = None, error_count: int = 0) -> None:
        self.created, self.updated, self.unchanged = created, updated, unchanged
        self.errors = errors or []
        self.error_count = error_count or len(self.errors)
        self.done: list[ImportedRow] = []

    def fail(self, row: int, external_id: str | None, error: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(ImportRowError(row=row, external_id=external_id, error=error))


def _enrolment(value: str | None) -> str | None:
    """A spreadsheet's date (`2024-03-15`) is midnight UTC that day; a full RFC 3339 time stays."""
    if value and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return f"{value}T00:00:00Z"
    return value


def _rows(text: str) -> Iterator[Row]:
    return read_sheet(text, required=("external_id", "display_name"), known=CSV_FIELDS).rows


def count_rows(text: str) -> int:
    """How many records the file holds (the header is checked first, and refused as a whole)."""
    return sum(1 for _ in _rows(text))


async def import_sheet(store: WalletStore, program_id: str, text: str, skip: int = 0,
                       tally: Tally | None = None, progress: Progress | None = None) -> ImportReport:
    """Imports every row it can (after the first `skip`), reporting each bad one; answers the
    report. `progress(rows done, tally)` is awaited after each chunk."""
    tally = tally or Tally()
    rows = _rows(text)
    done = skip
    for _ in islice(rows, skip):
        pass
    teams: dict[str, bool] = {}
    while chunk := list(islice(rows, CHUNK)):
        await _import_chunk(store, program_id, chunk, tally, teams)
        done += len(chunk)
        if progress is not None:
            await progress(done, tally)
    return ImportReport(created=tally.created, updated=tally.updated, unchanged=tally.unchanged,
                        errors=tally.errors, participants=tally.done)


def _spec(row: Row, tally: Tally) -> NewParticipant | None:
    if row.problem is not None:
        tally.fail(row.number, None, row.problem)
        return None
    values: dict[str, Any] = {k: row.get(k) for k in CSV_FIELDS}
    values["enrolled_at"] = _enrolment(values["enrolled_at"])
    try:
        return msgspec.convert(values, NewParticipant)
    except msgspec.ValidationError as exc:
        tally.fail(row.number, row.get("external_id"), describe(exc))
        return None


def _email(value: str | None) -> str:
    return (value or "").strip().lower()


async def _email_holders(program_id: str, emails: set[str]) -> dict[str, str]:
    """Participant id by lower-cased email, for these emails in the program."""
    holders: dict[str, str] = {}
    wanted = sorted(emails)
    for start in range(0, len(wanted), 500):
        part = wanted[start:start + 500]
        rows = await Participant.raw(
            "SELECT id, email FROM participants WHERE program_id = {} "
            f"AND lower(email) IN ({placeholders(len(part))})",
            program_id, *part).run()
        for r in rows:
            holders.setdefault(_email(r["email"]), r["id"])
    return holders


async def _known_teams(program_id: str, wanted: set[str], teams: dict[str, bool]) -> None:
    unknown = sorted(t for t in wanted if t not in teams)
    if unknown:
        found = {r["id"] for r in await Team.select(Team.id).where(
            (Team.program_id == program_id) & Team.id.is_in(unknown)).run()}
        teams.update({t: t in found for t in unknown})


async def _import_chunk(store: WalletStore, program_id: str, chunk: list[Row], tally: Tally,
                        teams: dict[str, bool]) -> None:
    specs: list[tuple[Row, NewParticipant]] = []
    for row in chunk:
        spec = _spec(row, tally)
        if spec is not None:
            specs.append((row, spec))
    keys = sorted({f"{program_id}:{s.external_id}" for _, s in specs})
    existing = {r["program_external"]: r for r in await Participant.select().where(
        Participant.program_external.is_in(keys)).run()} if keys else {}
    holders = await _email_holders(program_id, {_email(s.email) for _, s in specs if s.email})
    await _known_teams(program_id, {s.team_id for _, s in specs if s.team_id}, teams)

    now = datetime.now(timezone.utc)
    new_rows: list[tuple[Row, Participant]] = []
    seen: set[str] = set()
    for row, spec in specs:
        key = f"{program_id}:{spec.external_id}"
        if key in seen:
            # The same participant twice in one chunk: the second row goes the single way,
            # after the first is in, exactly as two separate upserts would.
            await _import_one(store, program_id, row, spec, tally)
            continue
        if spec.team_id and not teams.get(spec.team_id):
            tally.fail(row.number, spec.external_id, f"no team {spec.team_id!r} in this program")
            continue
        current = existing.get(key)
        email = _email(spec.email)
        holder = holders.get(email) if email else None
        if holder is not None and (current is None or holder != current["id"]):
            tally.fail(row.number, spec.external_id, "another participant of this program has this email")
            continue
        seen.add(key)
        if current is not None:
            await _update(program_id, row, spec, current, tally)
            continue
        participant_id = new_id("ptc")
        if email:
            holders[email] = participant_id  # a later row of the file with the same email is refused
        new_rows.append((row, Participant(
            id=participant_id, program_id=program_id, external_id=spec.external_id, program_external=key,
            public_id="p-" + secrets.token_hex(8), display_name=spec.display_name, email=spec.email,
            email_key=email_key(spec.email), team_id=spec.team_id, segment=spec.segment, enrolled_at=spec.enrolled_at, created_at=now,
            updated_at=now)))
    if new_rows:
        try:
            await Participant.insert(*[p for _, p in new_rows]).run()
        except Exception:
            # A concurrent enrolment took one of these ids or emails: the rows go one by one,
            # each answering what the single upsert answers.
            for row, participant in new_rows:
                spec = next(s for r, s in specs if r.number == row.number)
                await _import_one(store, program_id, row, spec, tally)
            return
        await store.open_wallets(program_id, [p.id for _, p in new_rows])
        tally.created += len(new_rows)
        tally.done.extend(ImportedRow(row=row.number, external_id=p.external_id, id=p.id, status="created")
                          for row, p in new_rows)


def _changes(spec: NewParticipant) -> ParticipantChanges:
    return ParticipantChanges(display_name=spec.display_name, email=spec.email, team_id=spec.team_id,
                              segment=spec.segment, enrolled_at=spec.enrolled_at)


async def _update(program_id: str, row: Row, spec: NewParticipant, current: dict[str, Any], tally: Tally) -> None:
    changes = _changes(spec)
    values = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
    stored = {k: current[k] for k in values}
    if "enrolled_at" in values and stored["enrolled_at"] is not None:
        stored["enrolled_at"] = stored["enrolled_at"].astimezone(timezone.utc)
        values["enrolled_at"] = values["enrolled_at"].astimezone(timezone.utc)
    if values == stored:
        tally.unchanged += 1
        tally.done.append(ImportedRow(row=row.number, external_id=spec.external_id, id=current["id"],
                                      status="unchanged"))
        return
    try:
        await update_participant(program_id, current["id"], changes)
    except Invalid as exc:
        tally.fail(row.number, spec.external_id, exc.detail)
        return
    tally.updated += 1
    tally.done.append(ImportedRow(row=row.number, external_id=spec.external_id, id=current["id"], status="updated"))


async def _import_one(store: WalletStore, program_id: str, row: Row, spec: NewParticipant, tally: Tally) -> None:
    try:
        view, created = await upsert_participant(program_id, spec)
    except Invalid as exc:
        tally.fail(row.number, spec.external_id, exc.detail)
        return
    if created:
        await store.open_wallet(program_id, view.id)
        tally.created += 1
        tally.done.append(ImportedRow(row=row.number, external_id=view.external_id, id=view.id, status="created"))
        return
    current = await Participant.select().where(Participant.id == view.id).first().run()
    await _update(program_id, row, spec, current, tally)


# --- jobs ---------------------------------------------------------------------------------


def _job(row: dict[str, Any]) -> ImportJob:
    return ImportJob(
        id=row["id"], program_id=row["program_id"], status=row["status"], total_rows=row["total_rows"],
        done_rows=row["done_rows"], created=row["created"], updated=row["updated"], unchanged=row["unchanged"],
        error_count=row["error_count"], errors=msgspec.json.decode(row["errors"], type=list[ImportRowError]),
        file_name=row["file_name"], created_by=row["created_by"], created_at=row["created_at"],
        finished_at=row["finished_at"], failure=row["failure"])


async def queue_import(program_id: str, text: str, file_name: str, created_by: str) -> ImportJob:
    """Checks the header and counts the rows now (a file that cannot be read is refused at
    once), and leaves the rows to the worker."""
    total = count_rows(text)
    if total == 0:
        raise Invalid("the file has a header but no participant rows", field="file")
    now = datetime.now(timezone.utc)
    job_id = new_id("imp")
    await ParticipantImport.insert(ParticipantImport(
        id=job_id, program_id=program_id, status="queued", total_rows=total, done_rows=0, created=0, updated=0,
        unchanged=0, error_count=0, errors="[]", csv=text, file_name=file_name[:200], created_by=created_by,
        created_at=now, lease_until=now, finished_at=None, failure=None)).run()
    return await import_job(program_id, job_id)


async def import_job(program_id: str, job_id: str) -> ImportJob:
    row = await ParticipantImport.select(*_JOB_COLUMNS).where(
        (ParticipantImport.id == job_id) & (ParticipantImport.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such import")
    return _job(row)


async def recent_imports(program_id: str, limit: int = 10) -> list[ImportJob]:
    rows = await ParticipantImport.select(*_JOB_COLUMNS).where(ParticipantImport.program_id == program_id).order_by(
        ParticipantImport.created_at, ascending=False).limit(limit).run()
    return [_job(r) for r in rows]


async def run_due(store: WalletStore) -> int:
    """Imports the files waiting (or left by a worker whose lease ran out); answers how many
    jobs it finished."""
    finished = 0
    while True:
        now = datetime.now(timezone.utc)
        waiting = await ParticipantImport.select(ParticipantImport.id).where(
            ParticipantImport.status.is_in(["queued", "running"]) & (ParticipantImport.lease_until <= now)).order_by(
            ParticipantImport.created_at).first().run()
        if waiting is None:
            return finished
        leased = await ParticipantImport.update({ParticipantImport.status: "running",
                                                 ParticipantImport.lease_until: now + LEASE}).where(
            (ParticipantImport.id == waiting["id"]) & (ParticipantImport.lease_until <= now)
            & ParticipantImport.status.is_in(["queued", "running"])).returning(ParticipantImport.id).run()
        if leased:
            await _run(store, waiting["id"])
            finished += 1


async def _run(store: WalletStore, job_id: str) -> None:
    row = await ParticipantImport.select().where(ParticipantImport.id == job_id).first().run()
    errors = msgspec.json.decode(row["errors"], type=list[ImportRowError])
    tally = Tally(row["created"], row["updated"], row["unchanged"], errors, row["error_count"])

    async def record(done: int, so_far: Tally) -> None:
        so_far.done.clear()  # the job keeps counts, not every row's id
        await ParticipantImport.update({
            ParticipantImport.done_rows: done, ParticipantImport.created: so_far.created,
            ParticipantImport.updated: so_far.updated, ParticipantImport.unchanged: so_far.unchanged,
            ParticipantImport.error_count: so_far.error_count,
            ParticipantImport.errors: msgspec.json.encode(so_far.errors).decode(),
            ParticipantImport.lease_until: datetime.now(timezone.utc) + LEASE,
        }).where(ParticipantImport.id == job_id).run()

    try:
        await import_sheet(store, row["program_id"], row["csv"], skip=row["done_rows"], tally=tally,
                           progress=record)
    except Exception as exc:  # a store failure: the job says so and the next pass retries
        await ParticipantImport.update({ParticipantImport.failure: f"{type(exc).__name__}"[:300]}).where(
            ParticipantImport.id == job_id).run()
        raise
    await ParticipantImport.update({
        ParticipantImport.status: "done", ParticipantImport.finished_at: datetime.now(timezone.utc),
        ParticipantImport.failure: None, ParticipantImport.csv: "",
    }).where(ParticipantImport.id == job_id).run()


_JOB_COLUMNS = [ParticipantImport.id, ParticipantImport.program_id, ParticipantImport.status,
                ParticipantImport.total_rows, ParticipantImport.done_rows, ParticipantImport.created,
                ParticipantImport.updated, ParticipantImport.unchanged, ParticipantImport.error_count,
                ParticipantImport.errors, ParticipantImport.file_name, ParticipantImport.created_by,
                ParticipantImport.created_at, ParticipantImport.finished_at, ParticipantImport.failure]

