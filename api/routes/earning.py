"""Earning: activities from CRMs, activity types, earning rules, simulation, the budget."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post, put
from litestar.di import Provide

from api.auth import admin_only, principal_of
from api.idempotency import provide_idem, request_id_for
from api.routes.approvals import ASKED, done_or_asked
from api.routes.participants import Cursor, Limit, program_of
from api.settings import Settings
from programs import activities, awards, budget, earning, rule_activation, rulebook
from programs.programs import get_program
from programs.rules import RuleSpec
from wallet.store import WalletStore
from kernel.idempotency import Idem

IDEMPOTENT = {"idem": Provide(provide_idem)}


@post("/v1/activities", guards=[admin_only], operation_id="ingestActivities", summary="Send activities",
      opt={"audit": "none"},
      description="Up to 1,000 events from a CRM or partner system. `external_id` is unique per program, so a "
                  "re-sent batch changes nothing: each item answers `new`, `duplicate` or `rejected` (with the "
                  "reason), and new ones the awards the earning rules gave; a duplicate whose first batch stopped "
                  "before all its awards were paid is paid the rest and lists its awards too (`points_awarded` "
                  "counts what this call paid). Built-in types: sale (amount in minor "
                  "units), training_completed (course), lead_received and lead_followed_up (lead_id), "
                  "deal_registered, demo_placed, custom; programs add their own.",
      tags=["earning"], status_code=200)
async def ingest(request: Request[Any, Any, Any], data: activities.ActivityBatch,
                 wallets: WalletStore) -> awards.ActivityReport:
    return await awards.run_activities(wallets, program_of(request), data.activities)


@post("/v1/activity-types", guards=[admin_only], operation_id="createActivityType",
      summary="Define an activity type", description="A program's own type, beside the built-in ones.",
      tags=["earning"])
async def create_type(request: Request[Any, Any, Any],
                      data: activities.NewActivityType) -> Response[activities.ActivityTypeView]:
    return Response(await activities.create_activity_type(program_of(request), data), status_code=201)


@get("/v1/activity-types", guards=[admin_only], operation_id="listActivityTypes", summary="List activity types",
     description="Built-in types with the attributes they need, then the program's own, each by name.",
     tags=["earning"])
async def list_types(request: Request[Any, Any, Any], limit: Limit = 50,
                     cursor: Cursor = None) -> activities.ActivityTypePage:
    return await activities.activity_type_page(program_of(request), limit, cursor)


FOUR_EYES = ("With the program's `approval_threshold_points` on, the rule is first simulated over the last 90 days "
             "of activities: a simulated award above the threshold answers 202 with an approval request for "
             "exactly this version instead, and nothing is stored until another person approves it. An optional "
             "`Idempotency-Key` makes a retry file the same request.")


async def _activate(request: Request[Any, Any, Any], settings: Settings, rule_id: str, data: RuleSpec,
                    done: int) -> Response[Any]:
    program = await get_program(program_of(request))
    answer = await rule_activation.activate(request.app.state.wallets, program, rule_id, data,
                                            f"key:{principal_of(request).subject_id}",
                                            await request_id_for(request, settings.idempotency_ttl_seconds))
    return done_or_asked(answer, done)


@post("/v1/earning-rules", guards=[admin_only], operation_id="createEarningRule", summary="Create an earning rule",
      description="Matches an activity type and conditions on its attributes and on the participant; awards fixed "
                  "points or points per unit of an amount; optional multiplier (an earlier activity within a "
                  "window), deadline (within hours of an earlier activity), cap per participant per "
                  "day/week/month/quarter, start and end, and a team award split across the team. The rule is "
                  "active at once. " + FOUR_EYES, tags=["earning"], responses=ASKED)
async def create_rule(request: Request[Any, Any, Any], data: RuleSpec,
                      settings: Settings) -> Response[rulebook.RuleView]:
    return await _activate(request, settings, "", data, 201)


@get("/v1/earning-rules", guards=[admin_only], operation_id="listEarningRules", summary="List earning rules",
     description="The current version of every rule, newest rule first; `include_retired` adds retired ones.",
     tags=["earning"])
async def list_rules(request: Request[Any, Any, Any], include_retired: bool = False, limit: Limit = 50,
                     cursor: Cursor = None) -> rulebook.RulePage:
    return await rulebook.rule_page(program_of(request), include_retired, limit, cursor)


@get("/v1/earning-rules/{rule_id:str}", guards=[admin_only], operation_id="getEarningRule",
     summary="Read an earning rule", description="The current version and every earlier one.", tags=["earning"])
async def read_rule(request: Request[Any, Any, Any], rule_id: str) -> rulebook.RuleDetail:
    return await rulebook.rule_detail(program_of(request), rule_id)


@put("/v1/earning-rules/{rule_id:str}", guards=[admin_only], operation_id="updateEarningRule",
     summary="Change an earning rule",
     description="Stores the body as the rule's next version; activities evaluated from now on use it, and each "
                 "award names the version that produced it. " + FOUR_EYES, tags=["earning"], responses=ASKED)
async def update_rule(request: Request[Any, Any, Any], rule_id: str, data: RuleSpec,
                      settings: Settings) -> Response[rulebook.RuleView]:
    return await _activate(request, settings, rule_id, data, 200)


@post("/v1/earning-rules/{rule_id:str}/retire", guards=[admin_only], operation_id="retireEarningRule",
      summary="Retire an earning rule", description="It awards nothing from now on; its awards stay.",
      tags=["earning"], status_code=200)
async def retire_rule(request: Request[Any, Any, Any], rule_id: str) -> rulebook.RuleView:
    return await rulebook.retire_rule(program_of(request), rule_id)


@post("/v1/earning-rules/simulate", opt={"audit": "none"}, guards=[admin_only], operation_id="simulateEarningRule",
      summary="Simulate a draft rule",
      description="Runs the rule over the stored activities between `starts_at` and `ends_at` and answers what it "
                  "would award, to whom, and its cost in money. Returned sales (`POST /v1/activities/reversals`) "
                  "are left out. Moves no points.", tags=["earning"],
      status_code=200)
async def simulate(request: Request[Any, Any, Any], data: earning.SimulationRequest,
                   wallets: WalletStore) -> earning.Simulation:
    return await earning.simulate_draft(wallets, await get_program(program_of(request)), data)


@post("/v1/earning-rules/{rule_id:str}/apply", guards=[admin_only], dependencies=IDEMPOTENT,
      operation_id="applyEarningRule", summary="Apply a rule to past activities",
      description="Awards what the rule (current version) gives for the stored activities between `starts_at` and "
                  "`ends_at`, as the simulator showed. Activities it already awarded are not paid again, nor are "
                  "returned sales (`POST /v1/activities/reversals`). Requires "
                  "`Idempotency-Key`: a retry replays the first report with `Idempotent-Replayed: true`; the same "
                  "key with another body answers 422 `idempotency_key_reused`.", tags=["earning"], status_code=200)
async def apply_rule(request: Request[Any, Any, Any], rule_id: str, data: awards.ApplyRequest, idem: Idem,
                     wallets: WalletStore, settings: Settings) -> Response[awards.ApplyReport]:
    body, replayed = await awards.apply_rule_once(wallets, idem, settings.idempotency_ttl_seconds,
                                                  program_of(request), rule_id, data)
    return Response(body, status_code=200, headers={"Idempotent-Replayed": "true"} if replayed else None)


@get("/v1/program/budget", guards=[admin_only], operation_id="getProgramBudget", summary="The program's budget",
     description="Funded, issued, redeemed, expired and outstanding points and their money value; `overdrawn` when "
                 "grants went past the budget.", tags=["earning"])
async def program_budget(request: Request[Any, Any, Any], wallets: WalletStore) -> budget.BudgetView:
    return await budget.budget_view(wallets, await get_program(program_of(request)))


ROUTES = [ingest, create_type, list_types, create_rule, list_rules, simulate, read_rule, update_rule, retire_rule,
          apply_rule, program_budget]
