"""Activities from CRMs and partner systems: validated, stored once per external id."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from programs.rules import ActivityFacts, TypeName
from kernel.clock import utc
from programs.tables import Activity, ActivityType, Participant
from kernel.errors import Conflict
from kernel.ids import new_id
from kernel.pages import page_of
from kernel.sqlite_pool import Statement, inserts, placeholders, run_statement

# Built-in types and the attributes each needs.
BUILTIN_TYPES: dict[str, tuple[str, ...]] = {
    "sale": ("amount",),
    "training_completed": ("course",),
    "lead_received": ("lead_id",),
    "lead_followed_up": ("lead_id",),
    "deal_registered": (),
    "demo_placed": (),
    "custom": (),
}
MAX_ATTRIBUTES_BYTES = 8192
FUTURE_TOLERANCE = timedelta(minutes=5)


class ActivityIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    external_id: Annotated[str, Meta(min_length=1, max_length=200)]
    type: TypeName
    participant_external_id: Annotated[str, Meta(min_length=1, max_length=200)]
    occurred_at: Annotated[datetime, Meta(tz=True)]
    attributes: dict[str, Any] = {}


class ActivityBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    activities: Annotated[list[ActivityIn], Meta(min_length=1, max_length=1000)]


class NewActivityType(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: TypeName
    description: Annotated[str, Meta(max_length=500)] = ""


class ActivityTypeView(msgspec.Struct, frozen=True):
    name: str
    builtin: bool
    required_attributes: list[str]
    description: str = ""


class Stored(msgspec.Struct, frozen=True):
    """The fate of one submitted activity, before awards."""

    external_id: str
    status: Literal["new", "duplicate", "rejected"]
    activity_id: str | None = None
    reason: str | None = None
    needs_evaluation: bool = False


async def program_types(program_id: str) -> set[str]:
    rows = await ActivityType.select(ActivityType.name).where(ActivityType.program_id == program_id).run()
    return set(BUILTIN_TYPES) | {r["name"] for r in rows}


async def create_activity_type(program_id: str, spec: NewActivityType) -> ActivityTypeView:
    if spec.name in BUILTIN_TYPES:
        raise Conflict(f"{spec.name!r} is a built-in type")
    row = ActivityType(id=new_id("atype"), program_id=program_id, name=spec.name,
                       program_name=f"{program_id}:{spec.name}", description=spec.description,
                       created_at=datetime.now(timezone.utc))
    inserted = await ActivityType.insert(row).on_conflict(action="DO NOTHING").returning(ActivityType.id).run()
    if not inserted:
        raise Conflict(f"activity type {spec.name!r} already exists")
    return ActivityTypeView(name=spec.name, builtin=False, required_attributes=[], description=spec.description)


async def list_activity_types(program_id: str) -> list[ActivityTypeView]:
    own = await ActivityType.select(ActivityType.name, ActivityType.description).where(
        ActivityType.program_id == program_id).order_by(ActivityType.name).run()
    return [ActivityTypeView(name=n, builtin=True, required_attributes=list(req)) for n, req in BUILTIN_TYPES.items()] \
        + [ActivityTypeView(name=r["name"], builtin=False, required_attributes=[], description=r["description"])
           for r in own]


class ActivityTypePage(msgspec.Struct, frozen=True):
    items: list[ActivityTypeView]
    next_cursor: str | None


async def activity_type_page(program_id: str, limit: int = 50, cursor: str | None = None) -> ActivityTypePage:
    """Built-in types first, then the program's own, each by name (the order the list states)."""
    def position(view: ActivityTypeView) -> str:
        return f"{0 if view.builtin else 1}:{view.name}"

    items, more = page_of(sorted(await list_activity_types(program_id), key=position), position, limit, cursor,
                          descending=False)
    return ActivityTypePage(items=items, next_cursor=more)


def problem_with(activity: ActivityIn, known_types: set[str], now: datetime) -> str | None:
    if activity.type not in known_types:
        return f"unknown activity type {activity.type!r}"
    for name in BUILTIN_TYPES.get(activity.type, ()):
        if name not in activity.attributes:
            return f"a {activity.type} needs the attribute {name!r}"
    if activity.type == "sale":
        amount = activity.attributes["amount"]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            return "a sale's amount is a non-negative integer of minor units (cents)"
    if utc(activity.occurred_at) > now + FUTURE_TOLERANCE:
        return "occurred_at is in the future"
    if len(msgspec.json.encode(activity.attributes)) > MAX_ATTRIBUTES_BYTES:
        return f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes"
    return None


async def store_batch(program_id: str, batch: list[ActivityIn], source: str = "api") -> tuple[list[Stored], list[ActivityFacts]]:
    """Stores the new activities once each (a re-sent external id is a duplicate) and answers
    every item's fate plus the activities still to evaluate: the new ones, and duplicates
    whose first evaluation never finished (a crash, or a concurrent sender still at it)."""
    now = datetime.now(timezone.utc)
    known = await program_types(program_id)
    externals = sorted({a.participant_external_id for a in batch})
    people = {}
    for start in range(0, len(externals), 500):
        chunk = [f"{program_id}:{e}" for e in externals[start:start + 500]]
        rows = await run_statement(Participant._meta.db, Statement(
            f"SELECT id, external_id, status FROM {Participant._meta.tablename} "
            f"WHERE program_external IN ({placeholders(len(chunk))})",
            tuple(chunk)))
        people.update({r["external_id"]: r for r in rows})

    fates: dict[int, Stored] = {}
    rows: list[tuple[Any, ...]] = []
    made: dict[str, str] = {}  # program_external -> the id this call gave it
    seen: set[str] = set()
    for index, item in enumerate(batch):
        reason = problem_with(item, known, now)
        person = people.get(item.participant_external_id)
        if reason is None and person is None:
            reason = f"no participant with external id {item.participant_external_id!r}"
        if reason is None and person["status"] != "active":
            reason = "the participant is deactivated"
        if reason is not None:
            fates[index] = Stored(external_id=item.external_id, status="rejected", reason=reason)
            continue
        if item.external_id in seen:
            fates[index] = Stored(external_id=item.external_id, status="duplicate", reason="repeated in this batch")
            continue
        seen.add(item.external_id)
        program_external = f"{program_id}:{item.external_id}"
        made[program_external] = new_id("act")
        rows.append((made[program_external], program_id, item.external_id, program_external, item.type,
                     person["id"], utc(item.occurred_at), msgspec.json.encode(item.attributes).decode(), source,
                     now))
    # Plain SQL, not Piccolo's builder (here and in the reads around): building a Table object
    # and its insert cost about 0.5 ms of the event loop's time an activity, so a batch of 100
    # held every other request up for 50-100 ms; the two IN reads' builder and row conversion
    # were a quarter of a batch's samples in the load mix at 1,000 requests/s (py-spy).
    for statement in inserts(Activity._meta.tablename, _ACTIVITY_COLUMNS, rows, "ON CONFLICT DO NOTHING", 250):
        await run_statement(Activity._meta.db, statement)

    keys = list(made)
    stored: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        found = await run_statement(Activity._meta.db, Statement(
            "SELECT id, external_id, type, participant_id, occurred_at, attributes, evaluated_at "
            f"FROM {Activity._meta.tablename} "
            f"WHERE program_external IN ({placeholders(len(chunk))})", tuple(chunk)))
        stored.update({r["external_id"]: r for r in found})

    to_evaluate: list[ActivityFacts] = []
    for index, item in enumerate(batch):
        if index in fates:
            continue
        row = stored[item.external_id]
        # Inserted by this call when the row holds the id it made (a concurrent sender's, or an
        # earlier one's, otherwise): ON CONFLICT DO NOTHING kept the first.
        is_new = row["id"] == made[f"{program_id}:{item.external_id}"]
        needs = is_new or row["evaluated_at"] is None
        fates[index] = Stored(external_id=item.external_id, status="new" if is_new else "duplicate",
                              activity_id=row["id"], needs_evaluation=needs)
        if needs:
            to_evaluate.append(facts(row))
    return [fates[i] for i in range(len(batch))], to_evaluate


_ACTIVITY_COLUMNS = ("id", "program_id", "external_id", "program_external", "type", "participant_id", "occurred_at",
                     "attributes", "source", "received_at")


def facts(row: dict[str, Any]) -> ActivityFacts:
    return ActivityFacts(id=row["id"], type=row["type"], participant_id=row["participant_id"],
                         occurred_at=utc(row["occurred_at"]), attributes=msgspec.json.decode(row["attributes"]))


async def activities_between(program_id: str, activity_type: str, start: datetime, end: datetime) -> list[ActivityFacts]:
    rows = await Activity.select(Activity.id, Activity.type, Activity.participant_id, Activity.occurred_at,
                                 Activity.attributes).where(
        (Activity.program_id == program_id) & (Activity.type == activity_type)
        & (Activity.occurred_at >= utc(start)) & (Activity.occurred_at < utc(end))
    ).order_by(Activity.occurred_at).order_by(Activity.id).run()
    return [facts(r) for r in rows]


# Postgres' "deadlock detected": the statement was rolled back and may simply run again.
DEADLOCK_SQLSTATE = "40P01"
DEADLOCK_ATTEMPTS = 5


async def mark_evaluated(activity_ids: list[str]) -> None:
    """Marks the activities evaluated. Concurrent requests carrying the same batch (a CRM
    retrying at once) mark overlapping rows: ids go in one sorted order, and a statement
    Postgres picks as a deadlock's victim (row locks taken in plan order) runs again."""
    now = datetime.now(timezone.utc)
    ids = sorted(set(activity_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for attempt in range(DEADLOCK_ATTEMPTS):
            try:
                await Activity.update({Activity.evaluated_at: now}).where(Activity.id.is_in(chunk)).run()
                break
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != DEADLOCK_SQLSTATE or attempt == DEADLOCK_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.02 * (attempt + 1))
