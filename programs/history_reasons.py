"""Why each line of a participant's history happened, for the console: the rule and its
version and the activity (or the claim) behind an award, the person or key behind a manual
grant or deduction and who approved it, the order behind a redemption. Read in a few queries
per page of history, from the records the award, the audit log and the orders keep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from programs.audit import money_row_id
from programs.tables import Activity, AuditEvent, Award, ConsoleUser, EarningRule


async def reasons(program_id: str, transactions: Sequence[Any]) -> dict[str, str]:
    """Transaction id -> the why, in words (transactions without a known source are left out)."""
    ids = [t.id for t in transactions]
    if not ids:
        return {}
    why: dict[str, str] = {}
    awards = await Award.select(Award.transaction_id, Award.rule_id, Award.rule_version, Award.activity_id).where(
        (Award.program_id == program_id) & Award.transaction_id.is_in(ids)).run()
    if awards:
        rules = {r["rule_version"]: r["name"] for r in await EarningRule.select(
            EarningRule.rule_version, EarningRule.name).where(EarningRule.rule_version.is_in(
                sorted({f"{a['rule_id']}:{a['rule_version']}" for a in awards}))).run()}
        activities = {r["id"]: r for r in await Activity.select(
            Activity.id, Activity.external_id, Activity.type, Activity.source).where(
                Activity.id.is_in(sorted({a["activity_id"] for a in awards}))).run()}
        for a in awards:
            rule = rules.get(f"{a['rule_id']}:{a['rule_version']}", a["rule_id"])
            activity = activities.get(a["activity_id"])
            what = ("claim " + activity["external_id"].removeprefix("claim:") if activity and
                    activity["source"] == "claim" else
                    f"{activity['type']} {activity['external_id']}" if activity else a["activity_id"])
            why.setdefault(a["transaction_id"], f"rule “{rule}” v{a['rule_version']} for {what}")
    audits = await AuditEvent.select(AuditEvent.id, AuditEvent.actor, AuditEvent.detail).where(
        AuditEvent.id.is_in([money_row_id(i) for i in ids])).run()
    if audits:
        people = await _people([a["actor"] for a in audits] + [
            str(msgspec.json.decode(a["detail"]).get("approved_by", "")) for a in audits])
        by_row = {a["id"]: a for a in audits}
        for tx in ids:
            row = by_row.get(money_row_id(tx))
            if row is None:
                continue
            detail = msgspec.json.decode(row["detail"])
            text = f"by {people.get(row['actor'], row['actor'])}"
            if detail.get("approved_by"):
                text += f", approved by {people.get(detail['approved_by'], detail['approved_by'])}"
            why[tx] = text
    for t in transactions:
        if t.id not in why and t.reference and t.reference.startswith("ord_"):
            why[t.id] = f"order {t.reference}"
    return why


async def _people(actors: list[str]) -> dict[str, str]:
    """Console users' names for "user:<id>" actors; keys and the operator stay as they are."""
    ids = sorted({a.removeprefix("user:") for a in actors if a.startswith("user:")})
    if not ids:
        return {}
    rows = await ConsoleUser.select(ConsoleUser.id, ConsoleUser.display_name).where(ConsoleUser.id.is_in(ids)).run()
    return {f"user:{r['id']}": r["display_name"] for r in rows}
