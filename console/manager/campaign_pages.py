"""Spin campaigns in the console: the wheel designer (new, and a draft's design), and a
campaign's page with its picture, its economics and its report. The figures are the
domain's (games/wheel.py `economics`, games/arcade.py `report`); saving calls
games/campaigns.py and shows its refusal on the form. Launch, pause, resume and end are
console/manager/actions.py `campaign_action`."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from catalog.items import Pricing, pricing_of, search
from console.manager import web
from console.manager.form_input import convert, shown_time, utc_field
from console.manager.web import InProgram, back, checked_form, in_program, page, render
from console.manager.wheel_picture import PALETTE, bars, colour_of, percent, points, rtp, slices
from games import arcade, campaigns
from games.sweepstakes import report as sweepstakes_report
from games.wheel import Economics, WheelSpec, economics
from kernel.errors import DomainError, Invalid
from programs import audit
from programs.console_users import MANAGES
from programs.programs import ProgramView, get_program
from programs.teams import list_teams

P = "/console/p/{program_id:str}"
PRIZES = (("nothing", "Nothing"), ("points", "Points"), ("item", "Catalog item"), ("free_spin", "Free spin"),
          ("entries", "Sweepstakes entries"))
# The form's words for the places a refusal names (console/manager/form_input.py).
NAMES = {"name": "name", "description": "description", "cost_points": "cost per spin",
         "max_spins_per_participant_per_day": "spins per participant per day", "budget_points": "prize pool",
         "starts_at": "starts", "ends_at": "ends", "eligibility": "eligibility", "team_ids": "teams",
         "label": "label", "weight": "weight", "color": "colour", "points": "points", "item_id": "catalog item",
         "stock": "stock", "spins": "free spins", "sweepstakes_id": "sweepstakes", "entries": "entries",
         "type": "prize"}
GROUPS = {"segments": "segment"}
_ROW = re.compile(r"^seg-(\d{1,3})-label$")

web.DONE.update({"campaign-created": "Campaign created: check it, then launch it.",
                 "campaign-saved": "Design saved."})


class Row(msgspec.Struct):
    """One segment as the form shows it (text as typed)."""

    index: int
    label: str = ""
    weight: str = "1"
    colour: str = ""
    prize: str = "nothing"
    points: str = ""
    item_id: str = ""
    stock: str = ""
    spins: str = "1"
    sweepstakes_id: str = ""
    entries: str = "1"


class Design(msgspec.Struct):
    """The designer's form as typed."""

    name: str = ""
    description: str = ""
    cost_points: str = "0"
    cap: str = ""
    budget: str = ""
    starts_at: str = ""
    ends_at: str = ""
    segments: str = ""  # eligibility: participant segments, comma separated
    team_ids: list[str] = []
    rows: list[Row] = []


def starting_design() -> Design:
    """A new wheel's first guess, for the manager to change: two segments, a cost."""
    return Design(cost_points="20", rows=[Row(index=0, label="Try again", weight="3"),
                                          Row(index=1, label="50 points", weight="1", prize="points", points="50")])


def design_of_view(view: campaigns.CampaignView) -> Design:
    rows = []
    for index, segment in enumerate(view.segments):
        prize = segment["prize"]
        rows.append(Row(index=index, label=segment["label"], weight=str(segment["weight"]),
                        colour=segment.get("color") or "", prize=prize["type"], points=str(prize.get("points", "")),
                        item_id=prize.get("item_id", ""), stock=str(prize.get("stock", "")),
                        spins=str(prize.get("spins", 1)), sweepstakes_id=prize.get("sweepstakes_id", ""),
                        entries=str(prize.get("entries", 1))))
    eligibility = view.eligibility or {}
    return Design(name=view.name, description=view.description, cost_points=str(view.cost_points),
                  cap=str(view.max_spins_per_participant_per_day or ""), budget=str(view.budget_points or ""),
                  starts_at=shown_time(view.starts_at), ends_at=shown_time(view.ends_at),
                  segments=", ".join(eligibility.get("segments") or []), team_ids=eligibility.get("team_ids") or [],
                  rows=rows)


def design_of_form(form: dict[str, str]) -> Design:
    indexes = sorted(int(m.group(1)) for m in map(_ROW.match, form) if m)
    rows = [Row(index=i, **{field: form.get(f"seg-{i}-{field.replace('_', '-')}", "").strip()
                            for field in ("label", "weight", "colour", "prize", "points", "item_id", "stock", "spins",
                                          "sweepstakes_id", "entries")}) for i in indexes]
    return Design(name=form.get("name", "").strip(), description=form.get("description", "").strip(),
                  cost_points=form.get("cost_points", "").strip(), cap=form.get("cap", "").strip(),
                  budget=form.get("budget", "").strip(), starts_at=form.get("starts_at", "").strip(),
                  ends_at=form.get("ends_at", "").strip(), segments=form.get("segments", "").strip(),
                  team_ids=sorted(key[5:] for key, value in form.items() if key.startswith("team-") and value),
                  rows=rows)


def _prize(row: Row) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        "points": {"points": row.points}, "item": {"item_id": row.item_id, "stock": row.stock},
        "free_spin": {"spins": row.spins}, "entries": {"sweepstakes_id": row.sweepstakes_id, "entries": row.entries}}
    return {"type": row.prize, **{k: v for k, v in fields.get(row.prize, {}).items() if v != ""}}


def spec_of(design: Design) -> WheelSpec:
    """The domain's wheel from the form; its refusal names the field in the form's words."""
    data: dict[str, Any] = {
        "name": design.name, "description": design.description,
        "segments": [{"label": r.label, "weight": r.weight, "prize": _prize(r), **({"color": r.colour} if r.colour else {})}
                     for r in design.rows]}
    optional = {"cost_points": design.cost_points, "max_spins_per_participant_per_day": design.cap,
                "budget_points": design.budget, "starts_at": utc_field(design.starts_at),
                "ends_at": utc_field(design.ends_at)}
    data.update({k: v for k, v in optional.items() if v})
    segments = [s.strip() for s in design.segments.split(",") if s.strip()]
    if segments or design.team_ids:
        data["eligibility"] = {**({"segments": segments} if segments else {}),
                               **({"team_ids": design.team_ids} if design.team_ids else {})}
    return convert(data, WheelSpec, NAMES, GROUPS)


class Choices(msgspec.Struct, frozen=True):
    """What the designer's selects offer, each with the points it is worth to the figures."""

    items: list[tuple[str, str, int]]  # (id, name, points price)
    sweepstakes: list[tuple[str, str, int]]  # (id, name, ticket price)
    teams: list[tuple[str, str]]


async def choices(request: Request[Any, Any, Any], program: ProgramView, pricing: Pricing) -> Choices:
    found = await search(program.id, pricing, limit=200)
    items = [(i.id, f"{i.brand.name} {i.name}", i.points_price) for i in found.items if i.value_type == "fixed"]
    draws = await sweepstakes_report.list_all(request.app.state.wallets, program, pricing, 100, status="open")
    teams = await list_teams(program.id, 200, None)
    return Choices(items=items, sweepstakes=[(s.id, s.name, s.entry_cost_points) for s in draws.items],
                   teams=[(t.id, t.name) for t in teams.items])


async def economics_of(program_id: str, spec: WheelSpec, pricing: Pricing) -> Economics | None:
    """The domain's figures for a design it accepts, else None (the browser's script still shows them)."""
    try:
        return economics(spec, await campaigns.item_prices(program_id, spec, pricing))
    except DomainError:
        return None


async def _designer(request: Request[Any, Any, Any], ctx: InProgram, design: Design, campaign_id: str | None,
                    error: str | None = None, code: int = 200) -> Response[str]:
    program = await get_program(ctx.program_id)
    pricing = pricing_of(program)
    figures = None
    try:  # the figures do not depend on the name: a wheel not yet named has them too
        figures = await economics_of(program.id, spec_of(msgspec.structs.replace(
            design, name=design.name or "unnamed")), pricing)
    except Invalid:
        pass
    weights = [int(r.weight) if r.weight.isdigit() else 0 for r in design.rows]
    title = "New campaign" if campaign_id is None else f"Design of {design.name or 'the campaign'}"
    return page(ctx, "console/campaign_design.html", title, "spin-campaigns", request, code=code, design=design,
                campaign_id=campaign_id, choices=await choices(request, program, pricing), prizes=PRIZES,
                figures=figures, blank_row={**msgspec.structs.asdict(Row(index=0)), "index": "__i__"}, picture=slices(weights, [r.colour or None for r in design.rows]), error=error,
                palette=PALETTE, colour_of=colour_of, percent=percent, points=points, rtp=rtp, program=program)


@get(f"{P}/spin-campaigns/new", include_in_schema=False)
async def new_campaign(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    return await _designer(request, ctx, starting_design(), None)


@get(f"{P}/spin-campaigns/{{campaign_id:str}}/design", include_in_schema=False)
async def edit_campaign(request: Request[Any, Any, Any], program_id: str, campaign_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    try:
        view = await campaigns.get_campaign(program_id, campaign_id, pricing_of(program))
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such campaign.", ctx=None)
    return await _designer(request, ctx, design_of_view(view), campaign_id)


def _edited(design: Design, intent: str) -> Design | None:
    """A design changed by the form's own buttons (without script: add or remove a segment), or None to save."""
    if intent == "add":
        return msgspec.structs.replace(design, rows=[*design.rows, Row(index=max(
            (r.index for r in design.rows), default=-1) + 1, weight="1")])
    if intent.startswith("remove-"):
        return msgspec.structs.replace(design, rows=[r for r in design.rows if f"remove-{r.index}" != intent])
    return None


async def _save(request: Request[Any, Any, Any], program_id: str, campaign_id: str | None) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    design = design_of_form(form)
    edited = _edited(design, form.get("intent", ""))
    if edited is not None:
        return await _designer(request, ctx, edited, campaign_id)
    try:
        program = await get_program(program_id)
        spec = spec_of(design)
        if campaign_id is None:
            view = await campaigns.create_campaign(program, spec, pricing_of(program))
        else:
            view = await campaigns.update_campaign(program, campaign_id, spec, pricing_of(program))
    except DomainError as exc:
        return await _designer(request, ctx, design, campaign_id, exc.detail, 422 if exc.code == "validation_error"
                               else 409)
    me = f"user:{ctx.signed.person.id}"
    await audit.record(program_id, me, "campaign.created" if campaign_id is None else "campaign.designed", view.id,
                       name=view.name)
    return back(program_id, f"spin-campaigns/{view.id}", "campaign-created" if campaign_id is None else "campaign-saved")


@post(f"{P}/spin-campaigns/new", include_in_schema=False, status_code=200)
async def create_campaign(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    return await _save(request, program_id, None)


@post(f"{P}/spin-campaigns/{{campaign_id:str}}/design", include_in_schema=False, status_code=200)
async def save_campaign(request: Request[Any, Any, Any], program_id: str, campaign_id: str) -> Response[Any]:
    return await _save(request, program_id, campaign_id)


@get(f"{P}/spin-campaigns/{{campaign_id:str}}", include_in_schema=False)
async def campaign_page(request: Request[Any, Any, Any], program_id: str, campaign_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    try:
        campaign = await campaigns.get_campaign(program_id, campaign_id, pricing_of(program))
        report = await arcade.report(request.app.state.wallets, program_id, campaign_id)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such campaign.", ctx=None)
    design = design_of_view(campaign)
    picture = slices([s["weight"] for s in campaign.segments], [s.get("color") for s in campaign.segments])
    chart = bars([s.label for s in report.segments], [s.configured_probability for s in report.segments],
                 [s.wins for s in report.segments], report.spins)
    return page(ctx, "console/campaign.html", campaign.name, "spin-campaigns", request, campaign=campaign,
                design=design, report=report, picture=picture, chart=chart, program=program, percent=percent,
                points=points, rtp=rtp, colour_of=colour_of, prizes=dict(PRIZES))


ROUTES = [new_campaign, create_campaign, edit_campaign, save_campaign, campaign_page]
