"""Awarding activities: the use cases that turn stored activities into points and scores.

New activities (a CRM batch, an approved claim) earn by the program's current rules, moving
its points boards in the same wallet call, then count on its activity-score boards; a rule
applied to past activities pays what it gives, once. The HTTP routes and any other caller
use these functions and hold no rule of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from programs import activities, earning, rulebook, standings
from programs.programs import ProgramView, get_program
from programs.rules import ActivityFacts
from programs.tables import Participant
from kernel.errors import Invalid
from kernel.idempotency import Idem, once
from wallet.store import WalletStore


class ActivityResult(msgspec.Struct, frozen=True, omit_defaults=True):
    external_id: str
    status: Literal["new", "duplicate", "rejected"]
    activity_id: str | None = None
    reason: str | None = None
    awards: list[earning.AwardView] = []


class ActivityReport(msgspec.Struct, frozen=True):
    received: int
    new: int
    duplicates: int
    rejected: int
    points_awarded: int
    items: list[ActivityResult]


class ApplyReport(msgspec.Struct, frozen=True):
    rule_id: str
    rule_version: int
    activities: int
    points_awarded: int
    awards: list[earning.AwardView]


async def record_activity_scores(wallets: WalletStore, program_id: str, done: list[ActivityFacts]) -> None:
    """Counts each activity on the program's activity-score boards (once per board and
    activity); a sale returned meanwhile no longer counts."""
    if not await standings.weighs_any(program_id, {a.type for a in done}):
        return
    returned = await wallets.reversed_activities(program_id, [a.id for a in done])
    done = [a for a in done if a.id not in returned]
    if not done:
        return
    teams = {r["id"]: r["team_id"] for r in await Participant.select(Participant.id, Participant.team_id).where(
        Participant.id.is_in(sorted({a.participant_id for a in done}))).run()}
    for activity in done:
        await standings.record_activity(wallets.client, program_id, activity.participant_id,
                                        teams.get(activity.participant_id), activity.type, activity.id,
                                        activity.occurred_at)


async def award(wallets: WalletStore, program: ProgramView,
                to_evaluate: list[ActivityFacts]) -> dict[str, list[earning.AwardView]]:
    """Everything new activities earn: awards by the current rules (moving points boards),
    then their activity scores. Shared by CRM batches and approved claims."""
    if not to_evaluate:
        return {}
    rules = await rulebook.current_rules(program.id)
    boards = await standings.points_boards(program.id)
    awarded = await earning.evaluate(wallets, program, to_evaluate, rules, boards.scoring)
    await record_activity_scores(wallets, program.id, to_evaluate)
    return awarded


async def run_activities(wallets: WalletStore, program_id: str, batch: list[activities.ActivityIn],
                         source: str = "api") -> ActivityReport:
    """Stores a batch of activities (each new, duplicate or rejected) and awards the new ones."""
    program = await get_program(program_id)
    fates, to_evaluate = await activities.store_batch(program_id, batch, source=source)
    awarded = await award(wallets, program, to_evaluate)
    # A duplicate whose first evaluation never finished (a crash, a suspension midway) is
    # evaluated by this call: its awards are listed too, and what they pay now is counted.
    items = [ActivityResult(external_id=f.external_id, status=f.status, activity_id=f.activity_id, reason=f.reason,
                            awards=awarded.get(f.activity_id or "", []) if f.needs_evaluation else [])
             for f in fates]
    return ActivityReport(
        received=len(items), new=sum(i.status == "new" for i in items),
        duplicates=sum(i.status == "duplicate" for i in items), rejected=sum(i.status == "rejected" for i in items),
        points_awarded=sum(a.points for i in items for a in i.awards if not a.already_awarded), items=items,
    )


class ApplyRequest(earning.Window, frozen=True, forbid_unknown_fields=True):
    """The stored activities a rule is applied to."""


async def apply_rule_once(wallets: WalletStore, idem: Idem, ttl: int, program_id: str, rule_id: str,
                          window: ApplyRequest) -> tuple[ApplyReport, bool]:
    """Applies the rule's current version to the window once per idempotency record `idem`:
    answers (the report, whether it is a replay of the first one). A bad window is refused
    before the record is touched."""
    window.check()

    async def action() -> ApplyReport:
        return await apply_current_rule(wallets, program_id, rule_id, window.starts_at, window.ends_at)

    return await once(wallets.client, idem, ttl, action, ApplyReport)


async def apply_current_rule(wallets: WalletStore, program_id: str, rule_id: str, starts_at: datetime,
                             ends_at: datetime) -> ApplyReport:
    """Pays what the rule's current version gives for the stored activities in the window;
    activities it already awarded are shown, not paid again. A retired rule is refused."""
    current = (await rulebook.versions(program_id, rule_id))[-1]
    if current.status != "active":
        raise Invalid("a retired rule cannot be applied", field="rule_id")
    boards = await standings.points_boards(program_id)
    results = await earning.apply_rule(wallets, await get_program(program_id), current, starts_at, ends_at,
                                       boards.scoring)
    awards = [a for items in results.values() for a in items]
    return ApplyReport(rule_id=rule_id, rule_version=current.version, activities=len(results),
                       points_awarded=sum(a.points for a in awards if not a.already_awarded), awards=awards)
