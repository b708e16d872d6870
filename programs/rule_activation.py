"""Activating an earning rule, with four eyes.

What counts as an activation: anything that starts a rule version awarding points, that is
creating a rule (it is active at once) or storing its next version (a change applies to the
activities evaluated from then on), from the API (`POST /v1/earning-rules`,
`PUT /v1/earning-rules/{id}`) or the console's Activate. Retiring a rule only stops awards
and is never held back.

When the program's approval threshold is on, the version is first simulated over the last
90 days of activities (the simulator the console shows): a simulated award above the
threshold files a request for exactly that version (its spec, its digest, the version
number it will take) instead, and its approval makes that version (programs/approving.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kernel.errors import Conflict
from programs import approvals, earning, rulebook
from programs.approvals import ApprovalView
from programs.activities import program_types
from programs.participants import check_teams
from programs.programs import ProgramView
from programs.rules import RuleSpec
from wallet.store import WalletStore

SIMULATED_DAYS = 90


async def activate(store: WalletStore, program: ProgramView, rule_id: str, spec: RuleSpec, requested_by: str,
                   request_id: str) -> rulebook.RuleView | ApprovalView:
    """Creates the rule (`rule_id` "") or stores `spec` as its next version and answers it; or,
    above the threshold, answers the request filed under `request_id` (pinned by the caller
    per idempotency key), and nothing is stored yet."""
    if program.approval_threshold_points is not None:
        rulebook.validate(spec, await program_types(program.id))
        await check_teams(program.id, spec.participants.team_ids if spec.participants else None,
                          "participants.team_ids")
        now = datetime.now(timezone.utc)
        simulated = await earning.simulate(store, program, spec, now - timedelta(days=SIMULATED_DAYS), now)
        if approvals.needs_approval(program, simulated.total_points):
            return await _ask(program, rule_id, spec, requested_by, request_id, simulated)
    if rule_id:
        return await rulebook.update_rule(program.id, rule_id, spec)
    return await rulebook.create_rule(program.id, spec)


async def _ask(program: ProgramView, rule_id: str, spec: RuleSpec, requested_by: str, request_id: str,
               simulated: earning.Simulation) -> ApprovalView:
    if rule_id:
        current = (await rulebook.versions(program.id, rule_id))[-1]
        if current.status == "retired":
            raise Conflict("a retired rule cannot change")
        made_id, version = rule_id, current.version + 1
    else:  # the new rule's id, fixed now: approving it again makes the same rule
        made_id, version = approvals.made_id("rule", request_id), 1
    details = approvals.Details(amount=simulated.cost, rule_id=made_id, rule_name=spec.name, rule_version=version,
                                rule_digest=rulebook.digest(program.id, rule_id, spec), rule=spec)
    return await approvals.file_request(program, "rule_activation", simulated.total_points, requested_by,
                                        request_id, details=details)
