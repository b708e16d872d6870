"""Spin campaigns as managers run them: draft, active, paused, ended.

A campaign is stored in SQL; launching it also writes what a spin needs to Redis (status,
dates, cost, daily cap, segments and their stock) so the spin can check everything in one
atomic step. A campaign with a budget funds a prize pool from the program budget at launch
(`pool:<campaign id>`); prizes are paid from it, and ending the campaign returns what is
left to the budget.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from catalog.items import Pricing, item_row, redemption_points
from fulfillment.sealing import Sealer
from games import seeds
from games.tables import SpinCampaign
from games.sweepstakes.tables import Sweepstakes
from games.wheel import EntriesPrize, Economics, FreeSpinPrize, ItemPrize, PointsPrize, WheelSpec, economics, problem_with
from programs.participants import check_teams
from programs.programs import ProgramView
from programs.tables import Participant
from games import keys as game_keys
from kernel import keys as kernel_keys
from wallet.accounts import raise_for
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import new_id
from kernel.clock import utc
from kernel.pages import decode_cursor, next_cursor
from wallet.store import Leg, WalletStore
from kernel.idempotency import Idem

Status = Literal["draft", "active", "paused", "ended"]
_decode_spec = msgspec.json.Decoder(WheelSpec).decode


class CampaignView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    status: Status
    name: str
    cost_points: int
    segments: list[Any]
    economics: Economics
    created_at: datetime
    updated_at: datetime
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    max_spins_per_participant_per_day: int | None = None
    budget_points: int | None = None
    eligibility: Any = None
    description: str = ""
    launched_at: datetime | None = None


class CampaignPage(msgspec.Struct, frozen=True):
    items: list[CampaignView]
    next_cursor: str | None


async def item_prices(program_id: str, spec: WheelSpec, pricing: Pricing) -> dict[str, int]:
    """Points prices of the item prizes (and a ticket's price for entries prizes, by
    sweepstakes id); an unknown or disabled item, or an unknown sweepstakes, is refused."""
    prices = {}
    for segment in spec.segments:
        if isinstance(segment.prize, EntriesPrize):
            found = await Sweepstakes.select(Sweepstakes.spec).where(
                (Sweepstakes.id == segment.prize.sweepstakes_id) & (Sweepstakes.program_id == program_id)).first().run()
            if found is None:
                raise Invalid(f"segment {segment.label!r}: no sweepstakes {segment.prize.sweepstakes_id!r}",
                              field="segments")
            prices[segment.prize.sweepstakes_id] = msgspec.json.decode(found["spec"])["entry_cost_points"]
        if isinstance(segment.prize, ItemPrize):
            try:
                row = await item_row(program_id, segment.prize.item_id)
                _, prices[segment.prize.item_id] = redemption_points(row, pricing, None)
            except (NotFound, Invalid):
                raise Invalid(f"segment {segment.label!r}: no active fixed-value item {segment.prize.item_id!r}",
                              field="segments") from None
    return prices


async def _view(row: dict[str, Any], pricing: Pricing) -> CampaignView:
    spec = _decode_spec(row["spec"])
    return CampaignView(
        id=row["id"], status=row["status"], name=spec.name, cost_points=spec.cost_points,
        segments=msgspec.to_builtins(spec.segments), economics=economics(spec, await item_prices(
            row["program_id"], spec, pricing)),
        created_at=utc(row["created_at"]), updated_at=utc(row["updated_at"]), starts_at=spec.starts_at,
        ends_at=spec.ends_at, max_spins_per_participant_per_day=spec.max_spins_per_participant_per_day,
        budget_points=spec.budget_points, eligibility=msgspec.to_builtins(spec.eligibility),
        description=spec.description, launched_at=utc(row["launched_at"]),
    )


async def _check(program_id: str, spec: WheelSpec, pricing: Pricing) -> None:
    problem = problem_with(spec)
    if problem:
        raise Invalid(problem, field="segments")
    await check_teams(program_id, spec.eligibility.team_ids if spec.eligibility else None, "eligibility.team_ids")
    await item_prices(program_id, spec, pricing)


async def create_campaign(program: ProgramView, spec: WheelSpec, pricing: Pricing) -> CampaignView:
    await _check(program.id, spec, pricing)
    now = datetime.now(timezone.utc)
    campaign_id = new_id("cmp")
    await SpinCampaign.insert(SpinCampaign(id=campaign_id, program_id=program.id, name=spec.name, status="draft",
                                           spec=msgspec.json.encode(spec).decode(), created_at=now,
                                           updated_at=now)).run()
    return await get_campaign(program.id, campaign_id, pricing)


async def campaign_row(program_id: str, campaign_id: str) -> dict[str, Any]:
    row = await SpinCampaign.select().where(
        (SpinCampaign.id == campaign_id) & (SpinCampaign.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such campaign")
    return row


async def get_campaign(program_id: str, campaign_id: str, pricing: Pricing) -> CampaignView:
    return await _view(await campaign_row(program_id, campaign_id), pricing)


async def list_campaigns(program_id: str, pricing: Pricing, limit: int = 50, cursor: str | None = None,
                         status: Status | None = None) -> CampaignPage:
    after = decode_cursor(cursor)
    where = SpinCampaign.program_id == program_id
    if after is not None:
        where &= SpinCampaign.id < after
    if status is not None:
        where &= SpinCampaign.status == status
    rows = await SpinCampaign.select().where(where).order_by(SpinCampaign.id, ascending=False) \
        .limit(limit + 1).run()
    return CampaignPage(items=[await _view(r, pricing) for r in rows[:limit]],
                        next_cursor=next_cursor([r["id"] for r in rows], limit))


async def update_campaign(program: ProgramView, campaign_id: str, spec: WheelSpec, pricing: Pricing) -> CampaignView:
    """Replaces a draft's design; a launched campaign cannot change (its odds are public)."""
    await _check(program.id, spec, pricing)
    changed = await SpinCampaign.update({SpinCampaign.spec: msgspec.json.encode(spec).decode(),
                                         SpinCampaign.name: spec.name,
                                         SpinCampaign.updated_at: datetime.now(timezone.utc)}) \
        .where((SpinCampaign.id == campaign_id) & (SpinCampaign.program_id == program.id)
               & (SpinCampaign.status == "draft")).returning(SpinCampaign.id).run()
    if not changed:
        row = await campaign_row(program.id, campaign_id)
        raise Conflict(f"the campaign is {row['status']}; only a draft can change")
    return await get_campaign(program.id, campaign_id, pricing)


def runtime_config(campaign_id: str, spec: WheelSpec, status: str, prices: dict[str, int]) -> dict[str, str]:
    """What the spin function reads (games/spins.lua): one flat hash under the program's tag.
    An item prize carries its points price, fixed at launch, which the prize pool pays."""
    segments = []
    entries_segments = 0
    for segment in spec.segments:
        prize = segment.prize
        entry: dict[str, Any] = {"w": segment.weight, "type": prize.__struct_config__.tag}
        if isinstance(prize, PointsPrize):
            entry["points"] = prize.points
        elif isinstance(prize, ItemPrize):
            entry["value"] = prices.get(prize.item_id, 0)
        elif isinstance(prize, FreeSpinPrize):
            entry["spins"] = prize.spins
        elif isinstance(prize, EntriesPrize):
            # k: which of the spin's extra key triples (and public ids) is this sweepstakes'.
            entries_segments += 1
            entry.update({"n": prize.entries, "sw": prize.sweepstakes_id, "k": entries_segments})
        segments.append(entry)
    return {
        "name": spec.name,
        "eligibility": msgspec.json.encode(spec.eligibility).decode() if spec.eligibility else "",
        "status": status,
        "starts_ms": str(int(utc(spec.starts_at).timestamp() * 1000)) if spec.starts_at else "",
        "ends_ms": str(int(utc(spec.ends_at).timestamp() * 1000)) if spec.ends_at else "",
        "cost": str(spec.cost_points),
        "cap": str(spec.max_spins_per_participant_per_day or ""),
        "pool": "1" if spec.budget_points else "0",
        "segments": msgspec.json.encode(segments).decode(),
    }


async def _set_status(program_id: str, campaign_id: str, to: Status, allowed: tuple[str, ...]) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    values: dict[Any, Any] = {SpinCampaign.status: to, SpinCampaign.updated_at: now}
    if to == "active":
        values[SpinCampaign.launched_at] = now
    changed = await SpinCampaign.update(values).where(
        (SpinCampaign.id == campaign_id) & (SpinCampaign.program_id == program_id)
        & SpinCampaign.status.is_in(list(allowed))).returning(SpinCampaign.id).run()
    row = await campaign_row(program_id, campaign_id)
    if not changed and row["status"] != to:
        raise Conflict(f"the campaign is {row['status']}; it cannot become {to}")
    return row


async def launch(store: WalletStore, program: ProgramView, campaign_id: str, pricing: Pricing,
                 sealer: Sealer | None = None) -> CampaignView:
    """Draft or paused -> active. A first launch funds the prize pool and loads the stock.
    With the sealer, every active participant without a seed pair gets one now, in bulk
    (games/seeds.py `commit_ahead`): the spins that follow a launch write no SQL."""
    row = await campaign_row(program.id, campaign_id)
    spec = _decode_spec(row["spec"])
    first = row["status"] == "draft"
    if first and spec.budget_points:
        # The record makes funding happen once even if two launches race; a refusal is not
        # kept, so launching again after the budget is funded can succeed.
        idem = Idem(key=kernel_keys.idempotency(program.id, "campaign", f"{campaign_id}:fund"), fingerprint="fund")
        outcome = await store.transfer(
            program.id, new_id("tx"), "campaign_budget",
            [Leg("acct:budget", f"acct:pool:{campaign_id}", spec.budget_points, "b")], idem=idem,
            reference=campaign_id, metadata=msgspec.json.encode({"reason": f"prize pool of {spec.name}"}).decode())
        if not outcome.ok:
            await store.client.delete(idem.key)
            raise_for(outcome)
    row = await _set_status(program.id, campaign_id, "active", ("draft", "paused"))
    config = runtime_config(campaign_id, spec, "active", await item_prices(program.id, spec, pricing))
    if first:
        config.update({f"stock:{i}": str(s.prize.stock) for i, s in enumerate(spec.segments)
                       if isinstance(s.prize, ItemPrize)})
    await store.client.hset(game_keys.campaign(program.id, campaign_id), mapping=config)
    if sealer is not None:
        active = await Participant.select(Participant.id).where(
            (Participant.program_id == program.id) & (Participant.status == "active")).run()
        await seeds.commit_ahead(store, sealer, program.id, [r["id"] for r in active])
    return await _view(row, pricing)


async def pause(store: WalletStore, program: ProgramView, campaign_id: str, pricing: Pricing) -> CampaignView:
    row = await _set_status(program.id, campaign_id, "paused", ("active",))
    await store.client.hset(game_keys.campaign(program.id, campaign_id), "status", "paused")
    return await _view(row, pricing)


async def end(store: WalletStore, program: ProgramView, campaign_id: str, pricing: Pricing) -> CampaignView:
    """Active or paused -> ended, for good; what is left of the prize pool returns to the budget."""
    row = await _set_status(program.id, campaign_id, "ended", ("draft", "active", "paused"))
    await store.client.hset(game_keys.campaign(program.id, campaign_id), "status", "ended")
    left = (await store.program_accounts(program.id)).get(f"pool:{campaign_id}", 0)
    if left > 0:
        await store.transfer(
            program.id, new_id("tx"), "campaign_budget_return",
            [Leg(f"acct:pool:{campaign_id}", "acct:budget", left, "0")],
            idem=Idem(key=kernel_keys.idempotency(program.id, "campaign", f"{campaign_id}:return"), fingerprint="return"),
            reference=campaign_id, metadata=msgspec.json.encode({"reason": "prize pool returned"}).decode())
    return await _view(row, pricing)
