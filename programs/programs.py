"""Programs: the tenants. Each has its own participants, points, keys and budget."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from programs.credentials import issue_key
from programs.program_news import announce
from programs.tables import Program
from kernel.bounded_map import BoundedMap
from kernel.errors import NotFound, ProgramSuspended
from kernel.ids import new_id
from wallet.store import WalletStore

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Annotated[int, Meta(ge=0)]
    currency: Currency


# What applies when a reward would take a participant past the year's reporting threshold
# without a tax form: the order goes through flagged, or is refused (tax_form_required).
TaxFormPolicy = Literal["flag", "refuse"]
# Per tax year, the reporting threshold in the program's minor units, e.g. {"2027": 250000};
# -1 removes a year's override.
TaxThresholds = Annotated[dict[Annotated[str, Meta(pattern=r"^(19|20|21)[0-9]{2}$")],
                               Annotated[int, Meta(ge=-1, le=10**11)]], Meta(max_length=50)]


class ProgramView(msgspec.Struct, frozen=True):
    id: str
    name: str
    point_name: str
    point_value: Money
    status: str
    timezone: str
    allow_overdraft: bool
    created_at: datetime
    points_expire_months: int | None = None
    catalog_markup_bps: int = 0
    claim_window_days: int | None = None
    tax_form_policy: str = "flag"
    tax_thresholds: dict[str, int] = {}
    approval_threshold_points: int | None = None
    pending_counts_on_boards: bool = False
    publish_checkpoints: bool = False


class NewProgram(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    point_name: Annotated[str, Meta(min_length=1, max_length=40)] = "points"
    point_value_cents: Annotated[int, Meta(ge=1, le=1_000_000, description="minor units per point")] = 1
    currency: Currency = "USD"
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    allow_overdraft: bool = True
    points_expire_months: Annotated[int, Meta(ge=1, le=120)] | None = None
    catalog_markup_bps: Annotated[int, Meta(ge=0, le=5000, description="catalog markup, 250 = 2.5%")] = 0
    claim_window_days: Annotated[int, Meta(ge=1, le=3650, description="claims for older sales are refused")] | None = None
    tax_form_policy: TaxFormPolicy = "flag"
    tax_thresholds: TaxThresholds = {}
    approval_threshold_points: Annotated[int, Meta(ge=1, le=10**12)] | None = None
    pending_counts_on_boards: Annotated[bool, Meta(description=(
        "pending points count on points leaderboards when awarded; otherwise when released"))] = False


ProgramStatus = Literal["active", "suspended"]


class StatusChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: ProgramStatus


class ProgramChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    point_name: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    # Only the operator changes it (set_status); a program's own admin sending it is refused.
    status: ProgramStatus | None = None
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    allow_overdraft: bool | None = None
    points_expire_months: Annotated[int, Meta(ge=0, le=120, description="0 turns expiry off")] | None = None
    catalog_markup_bps: Annotated[int, Meta(ge=0, le=5000)] | None = None
    claim_window_days: Annotated[int, Meta(ge=0, le=3650, description="0 turns the window off")] | None = None
    tax_form_policy: TaxFormPolicy | None = None
    tax_thresholds: TaxThresholds | None = None
    approval_threshold_points: Annotated[int, Meta(ge=0, le=10**12, description="0 turns four eyes off")] | None = None
    pending_counts_on_boards: bool | None = None
    publish_checkpoints: Annotated[bool, Meta(description="serve the signed ledger checkpoints publicly")] | None = None


def _view(row: dict) -> ProgramView:
    return ProgramView(
        id=row["id"],
        name=row["name"],
        point_name=row["point_name"],
        point_value=Money(amount=row["point_value_minor"], currency=row["currency"]),
        status=row["status"],
        timezone=row["timezone"],
        allow_overdraft=bool(row["allow_overdraft"]),
        created_at=row["created_at"],
        points_expire_months=row["points_expire_months"],
        catalog_markup_bps=row["catalog_markup_bps"] or 0,
        claim_window_days=row.get("claim_window_days") or None,
        tax_form_policy=row.get("tax_form_policy") or "flag",
        tax_thresholds=msgspec.json.decode(row.get("tax_thresholds") or "{}"),
        approval_threshold_points=row.get("approval_threshold_points") or None,
        pending_counts_on_boards=bool(row.get("pending_counts_on_boards")),
        publish_checkpoints=bool(row.get("publish_checkpoints")),
    )


def check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        from kernel.errors import Invalid

        raise Invalid(f"unknown time zone {name!r}", field="timezone") from None


async def create_program(spec: NewProgram) -> tuple[ProgramView, str]:
    """Creates the program and its first admin key; answers the key once, in clear."""
    check_timezone(spec.timezone)
    program_id = new_id("prg")
    await Program.insert(
        Program(
            id=program_id,
            name=spec.name,
            point_name=spec.point_name,
            point_value_minor=spec.point_value_cents,
            currency=spec.currency,
            timezone=spec.timezone,
            allow_overdraft=spec.allow_overdraft,
            points_expire_months=spec.points_expire_months,
            catalog_markup_bps=spec.catalog_markup_bps,
            claim_window_days=spec.claim_window_days,
            tax_form_policy=spec.tax_form_policy,
            approval_threshold_points=spec.approval_threshold_points,
            pending_counts_on_boards=spec.pending_counts_on_boards,
            tax_thresholds=msgspec.json.encode({y: a for y, a in sorted(spec.tax_thresholds.items()) if a >= 0}).decode(),
            created_at=datetime.now(timezone.utc),
        )
    ).run()
    _, admin_key = await issue_key(program_id, "admin", name="initial")
    return await get_program(program_id), admin_key


# Nearly every request reads its program; settings change rarely. A process keeps each view
# for a few seconds (another API process sees a change within that time; this one at once).
# Once a view is older than that, the next reader still gets it and starts one refresh in
# the background: before, every request in flight when the view expired read SQL at once
# (64 SELECTs queued on 4 connections every 5 s, a stall in the spin benchmark's tail).
log = logging.getLogger("rw.programs")
_CACHE_SECONDS = 5.0
# program -> (when it is due a refresh, the view); the bounded map drops the oldest when full.
_cache: BoundedMap[str, tuple[float, ProgramView]] = BoundedMap(10_000)
_changes: dict[str, int] = {}  # program -> changes seen here (a refresh that raced one is dropped)
_refreshing: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[None]] = {}


async def get_program(program_id: str) -> ProgramView:
    cached = _cache.get(program_id)
    if cached is None:
        return await _load(program_id)
    if cached[0] <= time.monotonic():
        loop = asyncio.get_running_loop()
        if (loop, program_id) not in _refreshing:
            task = loop.create_task(_refresh(program_id))
            _refreshing[(loop, program_id)] = task
            task.add_done_callback(lambda _: _refreshing.pop((loop, program_id), None))
    return cached[1]


async def _load(program_id: str) -> ProgramView:
    changes = _changes.get(program_id, 0)
    row = await Program.select().where(Program.id == program_id).first().run()
    if row is None:
        raise NotFound("no such program")
    view = _view(row)
    if _changes.get(program_id, 0) == changes:
        _cache.put(program_id, (time.monotonic() + _CACHE_SECONDS, view))
    return view


async def _refresh(program_id: str) -> None:
    try:
        await _load(program_id)
    except NotFound:
        _cache.pop(program_id)
    except Exception:  # the stale view serves until a refresh succeeds
        log.warning("program %s: refreshing its view failed", program_id, exc_info=True)


def forget_program(program_id: str) -> None:
    """After a change (made here, or announced by another process): the next read in this
    process reads SQL."""
    _changes[program_id] = _changes.get(program_id, 0) + 1
    _cache.pop(program_id)


def forget_every_program() -> None:
    for program_id in _cache.keys():
        forget_program(program_id)


def keep_views_for(seconds: float) -> None:
    """How long a view serves before a refresh (RW_PROGRAM_CACHE_SECONDS)."""
    global _CACHE_SECONDS
    _CACHE_SECONDS = seconds


async def find_program_by_name(name: str) -> ProgramView | None:
    row = await Program.select().where(Program.name == name).order_by(Program.id).first().run()
    return None if row is None else _view(row)


async def list_program_ids() -> list[str]:
    return [row["id"] for row in await Program.select(Program.id).run()]


async def update_program(store: WalletStore, program_id: str, changes: ProgramChanges) -> ProgramView:
    """Changes a program's settings: SQL, then the overdraft rule the wallet's Lua reads from
    Redis, then every process is told to drop its view (programs/program_news.py)."""
    values = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None and k != "status"}
    for off_at_zero in ("points_expire_months", "claim_window_days", "approval_threshold_points"):
        if values.get(off_at_zero) == 0:
            values[off_at_zero] = None
    if "timezone" in values:
        check_timezone(values["timezone"])
    if "tax_thresholds" in values:
        # Merged into the program's overrides: a year set to -1 goes back to the default.
        current = dict((await get_program(program_id)).tax_thresholds)
        current.update(values["tax_thresholds"])
        values["tax_thresholds"] = msgspec.json.encode(
            {year: amount for year, amount in sorted(current.items()) if amount >= 0}).decode()
    if values:
        await Program.update({getattr(Program, k): v for k, v in values.items()}).where(
            Program.id == program_id
        ).run()
    forget_program(program_id)
    view = await get_program(program_id)
    await store.set_program_config(program_id, overdraft="1" if view.allow_overdraft else "0")
    await announce(store.client, program_id)
    return view


# Suspension. The view above is cached per process, so it cannot say "suspended" on the very
# next request of every worker; the wallet's config hash in Redis (`suspended`, under the
# program's hash tag) can: the Lua functions that move points refuse there atomically, and
# the other refused operations (token mints, refreshes, claims, draws) read it here.


async def set_status(store: WalletStore, program_id: str, status: ProgramStatus) -> ProgramView:
    """The operator suspends or reactivates a program: SQL keeps the record, Redis the flag
    every worker checks; both are written before the answer."""
    await get_program(program_id)  # 404 for an unknown program
    await Program.update({Program.status: status}).where(Program.id == program_id).run()
    await sync_status(store, program_id, status)
    forget_program(program_id)
    await announce(store.client, program_id)
    return await get_program(program_id)


async def sync_status(store: WalletStore, program_id: str, status: str) -> None:
    """Writes the program's status into the Redis flag (also after a rebuild of Redis)."""
    await store.set_program_config(program_id, suspended="1" if status == "suspended" else "0")


async def ensure_active(store: WalletStore, program_id: str) -> None:
    """Raises ProgramSuspended while the operator has the program suspended."""
    if await store.program_suspended(program_id):
        raise suspended_error()


def suspended_error() -> ProgramSuspended:
    """The refusal for a suspended program (the request gate reads the flag itself)."""
    return ProgramSuspended("the program is suspended by the platform operator: nothing new can be granted, "
                            "spent, entered or signed in to until it is reactivated")


async def list_programs_with_expiry() -> list[ProgramView]:
    rows = await Program.select().where(Program.points_expire_months.is_not_null()).run()
    return [_view(r) for r in rows]
