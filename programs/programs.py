"""Programs: the tenants. Each has its own participants, points, keys and budget."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from programs.credentials import issue_key
from programs.tables import Program
from wallet.errors import NotFound, ProgramSuspended
from wallet.ids import new_id
from wallet.store import WalletStore

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Annotated[int, Meta(ge=0)]
    currency: Currency


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


class NewProgram(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    point_name: Annotated[str, Meta(min_length=1, max_length=40)] = "points"
    point_value_cents: Annotated[int, Meta(ge=1, le=1_000_000, description="minor units per point")] = 1
    currency: Currency = "USD"
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    allow_overdraft: bool = True
    points_expire_months: Annotated[int, Meta(ge=1, le=120)] | None = None
    catalog_markup_bps: Annotated[int, Meta(ge=0, le=5000, description="catalog markup, 250 = 2.5%")] = 0


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
    )


def check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        from wallet.errors import Invalid

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
            created_at=datetime.now(timezone.utc),
        )
    ).run()
    _, admin_key = await issue_key(program_id, "admin", name="initial")
    return await get_program(program_id), admin_key


# Nearly every request reads its program; settings change rarely. A process keeps each view
# for a few seconds (another API process sees a change within that time; this one at once).
_CACHE_SECONDS = 5.0
_cache: dict[str, tuple[float, ProgramView]] = {}


async def get_program(program_id: str) -> ProgramView:
    cached = _cache.get(program_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    row = await Program.select().where(Program.id == program_id).first().run()
    if row is None:
        raise NotFound("no such program")
    view = _view(row)
    if len(_cache) >= 10_000:
        _cache.clear()
    _cache[program_id] = (time.monotonic() + _CACHE_SECONDS, view)
    return view


async def find_program_by_name(name: str) -> ProgramView | None:
    row = await Program.select().where(Program.name == name).order_by(Program.id).first().run()
    return None if row is None else _view(row)


async def list_program_ids() -> list[str]:
    return [row["id"] for row in await Program.select(Program.id).run()]


async def update_program(program_id: str, changes: ProgramChanges) -> ProgramView:
    values = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None and k != "status"}
    if values.get("points_expire_months") == 0:
        values["points_expire_months"] = None
    if "timezone" in values:
        check_timezone(values["timezone"])
    if values:
        await Program.update({getattr(Program, k): v for k, v in values.items()}).where(
            Program.id == program_id
        ).run()
    _cache.pop(program_id, None)
    return await get_program(program_id)


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
    _cache.pop(program_id, None)
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
