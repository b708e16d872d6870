"""Participants: the dealer salespeople who earn and spend points, upserted by external id."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from programs.sessions import revoke_participant_sessions
from programs.tables import Participant, Team
from kernel.errors import Invalid, NotFound
from kernel.ids import IdOrEmpty, new_id
from kernel.text_search import contains_any
from kernel.pages import decode_cursor, next_cursor
from wallet.store import WalletStore

ExternalId = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Email = Annotated[str, Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Segment = Annotated[str, Meta(min_length=1, max_length=100)]
ParticipantStatus = Literal["active", "deactivated"]


# When the person joined the program, if before their record here (an imported salesforce):
# tenure rules count from it. Absent, enrolment is the moment the record was created.
EnrolledAt = Annotated[datetime, Meta(tz=True, description="when the participant joined the program (RFC 3339); "
                                                     "tenure rules count from it; default: when created here")]


class NewParticipant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    external_id: ExternalId
    display_name: Name
    email: Email | None = None
    team_id: IdOrEmpty | None = None
    segment: Segment | None = None
    enrolled_at: EnrolledAt | None = None


class ParticipantChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    display_name: Name | None = None
    email: Email | None = None
    team_id: IdOrEmpty | None = None
    segment: Segment | None = None
    status: ParticipantStatus | None = None
    show_name: bool | None = None
    enrolled_at: EnrolledAt | None = None


class ParticipantView(msgspec.Struct, frozen=True):
    id: str
    external_id: str
    public_id: str
    display_name: str
    email: str | None
    team_id: str | None
    segment: str | None
    status: ParticipantStatus
    show_name: bool
    enrolled_at: datetime
    created_at: datetime
    updated_at: datetime


class ParticipantPage(msgspec.Struct, frozen=True):
    items: list[ParticipantView]
    next_cursor: str | None


class ImportRowError(msgspec.Struct, frozen=True):
    row: int
    external_id: str | None
    error: str


class ImportedRow(msgspec.Struct, frozen=True):
    row: int
    external_id: str
    id: str
    status: Literal["created", "updated", "unchanged"]


class ImportReport(msgspec.Struct, frozen=True):
    created: int
    updated: int
    unchanged: int
    errors: list[ImportRowError]
    # Each good row's participant id, so a CRM can store our ids without a second lookup.
    participants: list[ImportedRow] = []


_COLUMNS = list(ParticipantView.__struct_fields__)


def _view(row: dict) -> ParticipantView:
    return ParticipantView(**{k: row[k] for k in _COLUMNS if k != "enrolled_at"},
                           enrolled_at=row["enrolled_at"] or row["created_at"])


async def _check_team(program_id: str, team_id: str | None) -> None:
    if team_id is None:
        return
    exists = await Team.exists().where((Team.id == team_id) & (Team.program_id == program_id)).run()
    if not exists:
        raise Invalid(f"no team {team_id!r} in this program", field="team_id")


async def check_teams(program_id: str, team_ids: list[str] | None, field: str) -> None:
    """Every id must name a team of this program: another program's id would be stored and
    silently match nobody (or, worse, mean something else after an import)."""
    if not team_ids:
        return
    wanted = sorted(set(team_ids))
    found = {r["id"] for r in await Team.select(Team.id).where(
        (Team.program_id == program_id) & Team.id.is_in(wanted)).run()}
    unknown = [t for t in wanted if t not in found]
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise Invalid(f"no team {shown} in this program", field=field)


def email_key(email: str | None) -> str | None:
    """An email as it is compared: stripped, lower case; None for none."""
    key = (email or "").strip().lower()
    return key or None


def _is_unique_violation(exc: BaseException) -> bool:
    """A unique index refused the write (SQLite or Postgres), not some other failure."""
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc).upper()
    try:
        from asyncpg.exceptions import UniqueViolationError
    except ImportError:  # pragma: no cover - asyncpg is installed with piccolo[postgres]
        return False
    return isinstance(exc, UniqueViolationError)


EMAIL_TAKEN = "another participant of this program has this email"


async def email_holders(program_id: str, email: str) -> list[tuple[str, str]]:
    """(id, status) of the program's participants with this email, whatever its case."""
    wanted = email.strip().lower()
    # ilike narrows the rows (its `_` matches any character); the exact match is made here.
    rows = await Participant.select(Participant.id, Participant.email, Participant.status).where(
        (Participant.program_id == program_id) & Participant.email.ilike(wanted)).limit(20).run()
    return [(r["id"], r["status"]) for r in rows if (r["email"] or "").strip().lower() == wanted]


async def _check_email_free(program_id: str, email: str | None, participant_id: str | None = None) -> None:
    """An email belongs to one participant of a program: it signs them in (email codes)."""
    if not email:
        return
    if any(holder != participant_id for holder, _ in await email_holders(program_id, email)):
        raise Invalid(EMAIL_TAKEN, field="email")


async def upsert_participant(program_id: str, spec: NewParticipant) -> tuple[ParticipantView, bool]:
    """Answers (participant, created). The same external id again answers the existing one."""
    key = f"{program_id}:{spec.external_id}"
    existing = await Participant.select().where(Participant.program_external == key).first().run()
    if existing is not None:
        return _view(existing), False
    await _check_team(program_id, spec.team_id)
    await _check_email_free(program_id, spec.email)
    now = datetime.now(timezone.utc)
    row = Participant(
        id=new_id("ptc"),
        program_id=program_id,
        external_id=spec.external_id,
        program_external=key,
        public_id="p-" + secrets.token_hex(8),
        display_name=spec.display_name,
        email=spec.email,
        email_key=email_key(spec.email),
        team_id=spec.team_id,
        segment=spec.segment,
        enrolled_at=spec.enrolled_at,
        created_at=now,
        updated_at=now,
    )
    try:
        await Participant.insert(row).run()
    except Exception as exc:
        # Lost a race with a concurrent upsert of the same external id: answer the winner.
        winner = await Participant.select().where(Participant.program_external == key).first().run()
        if winner is not None:
            return _view(winner), False
        # Lost a race for the email (the unique index on program_id + email_key): the same
        # refusal the check above gives when it sees the holder first.
        if _is_unique_violation(exc) and spec.email:
            raise Invalid(EMAIL_TAKEN, field="email") from None
        raise
    return await get_participant(program_id, row.id), True


async def get_participant(program_id: str, participant_id: str) -> ParticipantView:
    row = (
        await Participant.select()
        .where((Participant.id == participant_id) & (Participant.program_id == program_id))
        .first()
        .run()
    )
    if row is None:
        raise NotFound("no such participant")
    return _view(row)


async def display_names(program_id: str, participant_ids: set[str]) -> dict[str, str]:
    """Each of the program's participants among `participant_ids` by name (one query); ids of
    no participant of the program are left out."""
    if not participant_ids:
        return {}
    rows = await Participant.select(Participant.id, Participant.display_name).where(
        (Participant.program_id == program_id) & Participant.id.is_in(sorted(participant_ids))).run()
    return {r["id"]: r["display_name"] for r in rows}


async def list_participants(
    program_id: str,
    limit: int = 50,
    cursor: str | None = None,
    q: str | None = None,
    team_id: str | None = None,
    segment: str | None = None,
    status: ParticipantStatus | None = None,
) -> ParticipantPage:
    after = decode_cursor(cursor)
    where = Participant.program_id == program_id
    if after is not None:
        where &= Participant.id < after
    if q:
        where &= contains_any(("display_name", "external_id", "email"), q)
    if team_id is not None:
        where &= Participant.team_id == team_id
    if segment is not None:
        where &= Participant.segment == segment
    if status is not None:
        where &= Participant.status == status
    rows = await Participant.select().where(where).order_by(Participant.id, ascending=False).limit(limit + 1).run()
    return ParticipantPage(
        items=[_view(r) for r in rows[:limit]], next_cursor=next_cursor([r["id"] for r in rows], limit)
    )


async def update_participant(
    program_id: str, participant_id: str, changes: ParticipantChanges
) -> tuple[ParticipantView, ParticipantView]:
    """Answers (before, after) so the caller can react to a status change."""
    before = await get_participant(program_id, participant_id)
    values = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
    if "team_id" in values:
        await _check_team(program_id, values["team_id"])
    if "email" in values:
        await _check_email_free(program_id, values["email"], participant_id)
    if "email" in values:
        values["email_key"] = email_key(values["email"])
    if values:
        values["updated_at"] = datetime.now(timezone.utc)
        try:
            await Participant.update({getattr(Participant, k): v for k, v in values.items()}).where(
                (Participant.id == participant_id) & (Participant.program_id == program_id)
            ).run()
        except Exception as exc:
            if "email" in values and _is_unique_violation(exc):
                raise Invalid(EMAIL_TAKEN, field="email") from None
            raise
    return before, await get_participant(program_id, participant_id)


async def inactive_participant_ids(program_id: str) -> list[str]:
    rows = (
        await Participant.select(Participant.id)
        .where((Participant.program_id == program_id) & (Participant.status == "deactivated"))
        .run()
    )
    return [r["id"] for r in rows]


async def enrol_participant(store: WalletStore, program_id: str,
                            spec: NewParticipant) -> tuple[ParticipantView, bool]:
    """Enrols a participant with a wallet; the same external id again answers the existing one.
    Answers (participant, created)."""
    view, created = await upsert_participant(program_id, spec)
    if created:
        await store.open_wallet(program_id, view.id)
    return view, created


async def _apply_status(store: WalletStore, program_id: str, view: ParticipantView) -> None:
    """The deactivation rule: a participant who is not active is refused by their wallet and
    loses every session at once, so their access and refresh tokens stop on the very next
    request; balances are kept. Active again, the wallet answers them again."""
    inactive = view.status != "active"
    await store.set_inactive(program_id, view.id, inactive)
    if inactive:
        await revoke_participant_sessions(view.id)


async def change_participant(store: WalletStore, program_id: str, participant_id: str,
                             changes: ParticipantChanges) -> ParticipantView:
    """Changes a participant (name, email, team, segment, status) and applies their status."""
    _, after = await update_participant(program_id, participant_id, changes)
    await _apply_status(store, program_id, after)
    return after


async def deactivate_participant(store: WalletStore, program_id: str, participant_id: str) -> ParticipantView:
    """Deactivates a participant: their tokens stop at once; balances are kept."""
    return await change_participant(store, program_id, participant_id, ParticipantChanges(status="deactivated"))
