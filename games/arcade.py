"""What a participant can play now (the wheels to draw), and a manager's report per campaign."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec
from piccolo.query.functions.aggregate import Count, Sum

from games.campaigns import campaign_row
from games.spins import local_day
from games.spin_projection import pending_spins
from games.tables import Spin, SpinCampaign
from games.wheel import ItemPrize, WheelSpec, open_at
from programs.participants import ParticipantView
from programs.programs import ProgramView
from wallet import keys
from games import keys as game_keys
from kernel.pages import page_of
from wallet.store import WalletStore

_decode_spec = msgspec.json.Decoder(WheelSpec).decode


class WheelSegment(msgspec.Struct, frozen=True, omit_defaults=True):
    label: str
    weight: int
    probability: float
    prize: dict[str, Any]
    color: str | None = None
    in_stock: bool = True


class PlayableCampaign(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    description: str
    cost_points: int
    segments: list[WheelSegment]
    spins_today: int
    max_spins_per_day: int | None = None
    spins_left_today: int | None = None
    ends_at: datetime | None = None


class Playable(msgspec.Struct, frozen=True):
    items: list[PlayableCampaign]
    next_cursor: str | None
    free_spins: int


def _int(value: Any) -> int:
    return int(value) if value not in (None, b"", "") else 0


async def playable(store: WalletStore, program: ProgramView, person: ParticipantView, limit: int = 50,
                   cursor: str | None = None) -> Playable:
    """Active campaigns within their dates that are open to this participant, newest first,
    with each wheel's segments and odds as designed, and what is left of today's spins."""
    now = datetime.now(timezone.utc)
    now_ms = store.clock() // 1_000_000
    rows = await SpinCampaign.select().where((SpinCampaign.program_id == program.id)
                                             & (SpinCampaign.status == "active")) \
        .order_by(SpinCampaign.id, ascending=False).run()
    open_to_me = []
    for row in rows:
        spec = _decode_spec(row["spec"])
        if not open_at(spec, now):
            continue
        if spec.eligibility is None or spec.eligibility.refusal(person.segment, person.team_id) is None:
            open_to_me.append((row, spec))
    # Paged after the filters (they are the participant's), before the per-wheel reads.
    page, more = page_of(open_to_me, lambda found: str(found[0]["id"]), limit, cursor)
    day = local_day(program.timezone, now_ms)
    items = []
    for row, spec in page:
        stock = await store.client.hgetall(game_keys.campaign(program.id, row["id"]))
        in_stock = [not isinstance(s.prize, ItemPrize) or _int(stock.get(f"stock:{i}".encode())) > 0
                    for i, s in enumerate(spec.segments)]
        # The odds a spin has now: an item out of stock weighs 0 in the draw, as in rw_spin.
        total = sum(s.weight for s, stocked in zip(spec.segments, in_stock) if stocked)
        segments = [WheelSegment(
            label=s.label, weight=s.weight, probability=s.weight / total if stocked and total else 0.0,
            prize=msgspec.to_builtins(s.prize), color=s.color, in_stock=stocked)
            for s, stocked in zip(spec.segments, in_stock)]
        today = _int(await store.client.get(game_keys.spin_day(program.id, row["id"], person.id, day)))
        cap = spec.max_spins_per_participant_per_day
        items.append(PlayableCampaign(
            id=row["id"], name=spec.name, description=spec.description, cost_points=spec.cost_points,
            segments=segments, spins_today=today, max_spins_per_day=cap,
            spins_left_today=None if cap is None else max(cap - today, 0), ends_at=spec.ends_at))
    free = _int(await store.client.hget(keys.wallet(program.id, person.id), "free_spins"))
    return Playable(items=items, next_cursor=more, free_spins=free)


class SegmentReport(msgspec.Struct, frozen=True, omit_defaults=True):
    index: int
    label: str
    prize: dict[str, Any]
    configured_probability: float
    wins: int
    observed_share: float
    points_paid: int
    stock_left: int | None = None


class CampaignReport(msgspec.Struct, frozen=True, omit_defaults=True):
    campaign_id: str
    status: str
    spins: int
    spins_paid_with_points: int
    spins_paid_with_free_spins: int
    participants: int
    cost_taken_points: int
    prizes_paid_points: int
    segments: list[SegmentReport]
    budget_points: int | None = None
    budget_left_points: int | None = None


async def report(store: WalletStore, program_id: str, campaign_id: str) -> CampaignReport:
    """Spins, what they took and paid, and each segment's wins against its configured odds."""
    row = await campaign_row(program_id, campaign_id)
    spec = _decode_spec(row["spec"])
    # Spins still in the journal count from there, every other one from SQL (read after the
    # journal: see pending_spins), so none counts twice while the projector writes them.
    pending = await pending_spins(store.client, program_id, campaign_id=campaign_id)
    mine = (Spin.program_id == program_id) & (Spin.campaign_id == campaign_id)
    if pending:
        mine &= Spin.id.not_in([p["id"] for p in pending])
    by_segment = {r["segment_index"]: r for r in await Spin.select(
        Spin.segment_index, Count().as_alias("wins"), Sum(Spin.prize_value).as_alias("paid"),
    ).where(mine).group_by(Spin.segment_index).run()}
    by_payment = {r["paid_with"]: r for r in await Spin.select(
        Spin.paid_with, Count().as_alias("spins"), Sum(Spin.cost_points).as_alias("cost"),
    ).where(mine).group_by(Spin.paid_with).run()}
    newcomers = sorted({p["participant_id"] for p in pending})
    elsewhere = mine & Spin.participant_id.not_in(newcomers) if newcomers else mine
    participants = await Spin.count(distinct=[Spin.participant_id]).where(elsewhere).run() + len(newcomers)
    for p in pending:
        seg = by_segment.setdefault(p["segment_index"], {})
        seg["wins"], seg["paid"] = int(seg.get("wins") or 0) + 1, int(seg.get("paid") or 0) + p["prize_value"]
        way = by_payment.setdefault(p["paid_with"], {})
        way["spins"], way["cost"] = int(way.get("spins") or 0) + 1, int(way.get("cost") or 0) + p["cost_points"]
    spins = sum(int(r["spins"]) for r in by_payment.values())
    config = await store.client.hgetall(game_keys.campaign(program_id, campaign_id))
    total = sum(s.weight for s in spec.segments)
    segments = []
    for i, s in enumerate(spec.segments):
        found = by_segment.get(i, {})
        wins = int(found.get("wins") or 0)
        stock = None
        if isinstance(s.prize, ItemPrize):
            stock = _int(config.get(f"stock:{i}".encode())) if config else s.prize.stock
        segments.append(SegmentReport(
            index=i, label=s.label, prize=msgspec.to_builtins(s.prize), configured_probability=s.weight / total,
            wins=wins, observed_share=wins / spins if spins else 0.0, points_paid=int(found.get("paid") or 0),
            stock_left=stock))
    pool = None
    if spec.budget_points:
        pool = (await store.program_accounts(program_id)).get(f"pool:{campaign_id}", 0)
    return CampaignReport(
        campaign_id=campaign_id, status=row["status"], spins=spins,
        spins_paid_with_points=int(by_payment.get("points", {}).get("spins") or 0),
        spins_paid_with_free_spins=int(by_payment.get("free_spin", {}).get("spins") or 0),
        participants=participants, cost_taken_points=int(by_payment.get("points", {}).get("cost") or 0),
        prizes_paid_points=sum(seg.points_paid for seg in segments), segments=segments,
        budget_points=spec.budget_points, budget_left_points=pool)
