"""Earning rules in the console: a form for a rule (new, or the next version of one), a
simulation of it against the last 90 days of activities, and activation of exactly what was
simulated. The form is the draft: nothing is stored until **Activate**, and Activate carries
the simulated rule's digest, so a rule changed after its simulation must be simulated again.
With four eyes on, an activation whose simulated cost passes the approval threshold goes to
Approvals (programs/rule_activation.py) and its approval activates exactly that version.

The form's fields map onto the API's RuleSpec one to one (`spec_of_form`, `form_of_spec`);
the rulebook and the simulator are the API's own use cases."""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Response, get, post

from api.problems import status_for
from console.manager.web import InProgram, back, checked_form, in_program, page, refused, render
from kernel.errors import DomainError, Invalid
from kernel import keys as kernel_keys
from kernel.idempotency import Idem, pinned_id
from kernel.ids import new_id
from programs import approvals, audit, earning, rule_activation, rulebook
from programs.approvals import ApprovalView
from programs.activities import list_activity_types
from programs.console_users import MANAGES
from programs.programs import ProgramView, get_program
from programs.rules import RuleSpec

P = "/console/p/{program_id:str}"
SIMULATED_DAYS = 90
CONDITION_ROWS = 3
OPS = [("eq", "is"), ("ne", "is not"), ("gt", "more than"), ("gte", "at least"), ("lt", "less than"),
       ("lte", "at most"), ("in", "is one of (comma-separated)"), ("not_in", "is none of (comma-separated)"),
       ("contains", "contains"), ("exists", "is present")]
PERIODS = ["day", "week", "month", "quarter"]


def _whole(text: str, field: str) -> int:
    try:
        return int(text.strip().replace(",", ""))
    except ValueError:
        raise Invalid(f"{field} must be a whole number", field=field) from None


def _scalar(text: str) -> Any:
    """A condition's value as typed: a number when it reads as one, else the text."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _day_start(text: str, zone: str) -> str | None:
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise Invalid("a date must read YYYY-MM-DD", field="dates") from None
    return datetime.combine(day, time(), ZoneInfo(zone)).isoformat()


def spec_of_form(form: dict[str, str], program: ProgramView) -> RuleSpec:
    """The RuleSpec the form describes, checked by msgspec exactly as the API checks a body."""
    if form.get("award_type") == "per_unit":
        award: dict[str, Any] = {"type": "per_unit", "points_per_unit": _whole(form.get("points", ""), "points"),
                                 "attribute": form.get("unit_attribute", "").strip() or "amount",
                                 "unit": _whole(form.get("unit", "") or "1", "unit")}
        if form.get("max_points", "").strip():
            award["max_points"] = _whole(form["max_points"], "max_points")
    else:
        award = {"type": "fixed", "points": _whole(form.get("points", ""), "points")}
    body: dict[str, Any] = {"name": form.get("name", "").strip(), "activity_type": form.get("activity_type", ""),
                            "award": award, "description": form.get("description", "").strip()}
    conditions = []
    for i in range(CONDITION_ROWS):
        attribute = form.get(f"cond{i}_attribute", "").strip()
        if not attribute:
            continue
        op, raw = form.get(f"cond{i}_op", "eq"), form.get(f"cond{i}_value", "")
        value: Any = None if op == "exists" else (
            [_scalar(v) for v in raw.split(",") if v.strip()] if op in ("in", "not_in") else _scalar(raw))
        conditions.append({"attribute": attribute, "op": op, "value": value})
    body["conditions"] = conditions
    segments = [s.strip() for s in form.get("segments", "").split(",") if s.strip()]
    if segments:
        body["participants"] = {"segments": segments}
    if form.get("cap_points", "").strip():
        body["cap"] = {"points": _whole(form["cap_points"], "cap_points"), "period": form.get("cap_period", "day")}
    if form.get("multiplier_factor", "").strip():
        try:
            factor = float(form["multiplier_factor"])
        except ValueError:
            raise Invalid("the multiplier must be a number such as 1.5", field="multiplier_factor") from None
        body["multiplier"] = {"factor": factor, "when_activity_type": form.get("multiplier_type", ""),
                              "within_days": _whole(form.get("multiplier_days", ""), "multiplier_days")}
    if form.get("deadline_type", "").strip():
        body["deadline"] = {"after_activity_type": form["deadline_type"].strip(),
                            "match_attribute": form.get("deadline_attribute", "").strip(),
                            "within_hours": _whole(form.get("deadline_hours", ""), "deadline_hours")}
    for name in ("starts_at", "ends_at"):
        moment = _day_start(form.get(name, ""), program.timezone)
        if moment:
            body[name] = moment
    if form.get("free_spins", "").strip():
        body["free_spins"] = _whole(form["free_spins"], "free_spins")
    try:
        return msgspec.convert(body, RuleSpec)
    except msgspec.ValidationError as exc:
        raise Invalid(str(exc).replace("`$.", "`"), field="rule") from None


def form_of_spec(spec: RuleSpec, zone: str) -> dict[str, str]:
    """The form's fields for a stored rule (the inverse of spec_of_form)."""
    award = spec.award
    form = {"name": spec.name, "activity_type": spec.activity_type, "description": spec.description,
            "award_type": "per_unit" if hasattr(award, "points_per_unit") else "fixed"}
    if hasattr(award, "points_per_unit"):
        form.update(points=str(award.points_per_unit), unit_attribute=award.attribute, unit=str(award.unit),
                    max_points=str(award.max_points or ""))
    else:
        form["points"] = str(award.points)
    for i, condition in enumerate(spec.conditions[:CONDITION_ROWS]):
        value = condition.value
        form.update({f"cond{i}_attribute": condition.attribute, f"cond{i}_op": condition.op,
                     f"cond{i}_value": ", ".join(map(str, value)) if isinstance(value, list)
                     else "" if value is None else str(value)})
    if spec.participants and spec.participants.segments:
        form["segments"] = ", ".join(spec.participants.segments)
    if spec.cap:
        form.update(cap_points=str(spec.cap.points), cap_period=spec.cap.period)
    if spec.multiplier:
        form.update(multiplier_factor=str(spec.multiplier.factor), multiplier_type=spec.multiplier.when_activity_type,
                    multiplier_days=str(spec.multiplier.within_days))
    if spec.deadline:
        form.update(deadline_type=spec.deadline.after_activity_type, deadline_attribute=spec.deadline.match_attribute,
                    deadline_hours=str(spec.deadline.within_hours))
    for name in ("starts_at", "ends_at"):
        moment = getattr(spec, name)
        if moment is not None:
            form[name] = moment.astimezone(ZoneInfo(zone)).date().isoformat()
    if spec.free_spins:
        form["free_spins"] = str(spec.free_spins)
    return form


async def _editor(ctx: InProgram, request: Request[Any, Any, Any], program: ProgramView, form: dict[str, str],
                  rule_id: str, code: int = 200, **extra: Any) -> Response[str]:
    types = [t.name for t in await list_activity_types(program.id)]
    title = f"Edit {form.get('name') or 'rule'}" if rule_id else "New earning rule"
    return page(ctx, "console/rule_form.html", title, "earning-rules", request, code, program=program, form=form,
                rule_id=rule_id, types=types, ops=OPS, periods=PERIODS, rows=range(CONDITION_ROWS),
                days=SIMULATED_DAYS, **extra)


@get(f"{P}/earning-rules/new", include_in_schema=False)
async def new_rule(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    return await _editor(ctx, request, await get_program(program_id), {"award_type": "fixed"}, "")


@get(f"{P}/earning-rules/{{rule_id:str}}", include_in_schema=False)
async def edit_rule(request: Request[Any, Any, Any], program_id: str, rule_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    try:
        detail = await rulebook.rule_detail(program_id, rule_id)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such earning rule.", ctx=None)
    return await _editor(ctx, request, program, form_of_spec(detail.rule, program.timezone), rule_id,
                         detail=detail)


@post(f"{P}/earning-rules/simulate", include_in_schema=False, status_code=200)
async def simulate_rule(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    program = await get_program(program_id)
    rule_id = form.get("rule_id", "")
    now = datetime.now(timezone.utc)
    try:
        spec = spec_of_form(form, program)
        result = await earning.simulate_draft(request.app.state.wallets, program, earning.SimulationRequest(
            rule=spec, starts_at=now - timedelta(days=SIMULATED_DAYS), ends_at=now))
    except DomainError as exc:
        return await _editor(ctx, request, program, form, rule_id, status_for(exc.code), error=exc.detail)
    per_day = result.cost.amount / SIMULATED_DAYS
    return await _editor(ctx, request, program, form, rule_id, simulation=result, per_day=per_day,
                         simulated=rulebook.digest(program_id, rule_id, spec),
                         # The Activate form's own key: a double submit files one approval request.
                         activation_key=secrets.token_urlsafe(16),
                         needs_approval=approvals.needs_approval(program, result.total_points))


@post(f"{P}/earning-rules/activate", include_in_schema=False, status_code=200)
async def activate_rule(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    program = await get_program(program_id)
    rule_id = form.get("rule_id", "")
    try:
        spec = spec_of_form(form, program)
        if not hmac.compare_digest(form.get("simulated", ""), rulebook.digest(program_id, rule_id, spec)):
            raise Invalid("the rule changed after its simulation: simulate it again, then activate", field="rule")
        key = form.get("key", "")[:100]
        request_id = await pinned_id(request.app.state.redis, Idem(key=kernel_keys.idempotency(
            program_id, f"console:{ctx.signed.person.id}", f"activate:{key}")), "apr",
            request.app.state.settings.idempotency_ttl_seconds) if key else new_id("apr")
        saved = await rule_activation.activate(request.app.state.wallets, program, rule_id, spec,
                                               f"user:{ctx.signed.person.id}", request_id)
    except DomainError as exc:
        return await _editor(ctx, request, program, form, rule_id, status_for(exc.code), error=exc.detail)
    if isinstance(saved, ApprovalView):
        return back(program_id, "earning-rules", "rule-requested")
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "rule.activated", saved.id, version=saved.version,
                       rule=json.loads(msgspec.json.encode(spec)))
    return back(program_id, "earning-rules", "rule-activated")


@post(f"{P}/earning-rules/{{rule_id:str}}/retire", include_in_schema=False, status_code=200)
async def retire(request: Request[Any, Any, Any], program_id: str, rule_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        await rulebook.retire_rule(program_id, rule_id)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "rule.retired", rule_id)
    return back(program_id, "earning-rules", "rule-retired")


ROUTES = [new_rule, simulate_rule, activate_rule, edit_rule, retire]
