"""Sweepstakes in the console: create one (with its official rules previewed as the domain
writes them), and a sweepstakes' page with its entries so far, Close, Draw, the winners and
alternates, Forfeit, and the public proof. Every change is a CSRF-checked form calling
games/sweepstakes (design, entries, draw, payouts) and audited; a refusal is the domain's,
shown on the page. The list is console/manager/program_pages.py `sweepstakes_list`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from api.problems import status_for
from api.settings import Settings
from catalog.items import pricing_of, search
from console.manager import web
from console.manager.form_input import convert, shown_time, utc_field
from console.manager.web import InProgram, back, checked_form, in_program, page, render
from games.sweepstakes import design, entries, payouts
from games.sweepstakes import draw as drawing, report as reports
from games.sweepstakes.design import SweepstakesSpec
from games.sweepstakes.draw import Beacon
from kernel.errors import DomainError
from programs import audit, participants
from programs.console_users import MANAGES
from programs.programs import ensure_active, get_program
from wallet.accounts import Reason

P = "/console/p/{program_id:str}"
NAMES = {"name": "name", "description": "description", "starts_at": "opens", "closes_at": "closes",
         "entry_cost_points": "ticket cost", "max_entries_per_participant": "tickets per participant",
         "winners": "winners", "alternates": "alternates", "sponsor": "sponsor", "eligibility": "eligibility",
         "free_entry_method": "free method of entry", "claim_days": "days to claim", "rules_extra": "extra rules",
         "type": "kind", "points": "points", "item_id": "catalog item", "quantity": "quantity",
         "source": "beacon source", "round": "beacon round", "value": "beacon value", "reason": "reason"}
GROUPS = {"prizes": "prize"}
DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(SweepstakesSpec)}
# Where the rules name the sweepstakes' id before it has one.
UNNAMED = "{id}"

web.DONE.update({"sweepstakes-created": "Sweepstakes created: it takes entries until it closes.",
                 "sweepstakes-closed": "Closed: the entries are frozen and their hash is published.",
                 "sweepstakes-drawn": "Drawn: the winners are below and the proof is published.",
                 "forfeited": "Forfeited: the next alternate takes the prize."})


class PrizeRow(msgspec.Struct):
    index: int
    type: str = "points"
    points: str = ""
    item_id: str = ""
    quantity: str = "1"
    description: str = ""


class Draft(msgspec.Struct):
    """The creation form as typed."""

    name: str = ""
    description: str = ""
    starts_at: str = ""
    closes_at: str = ""
    entry_cost_points: str = "10"
    max_entries_per_participant: str = "10"
    winners: str = "1"
    alternates: str = "2"
    sponsor: str = ""
    eligibility: str = str(DEFAULTS["eligibility"])
    free_entry_method: str = str(DEFAULTS["free_entry_method"])
    claim_days: str = str(DEFAULTS["claim_days"])
    rules_extra: str = ""
    prizes: list[PrizeRow] = []


TEXT_FIELDS = ("name", "description", "starts_at", "closes_at", "entry_cost_points", "max_entries_per_participant",
               "winners", "alternates", "sponsor", "eligibility", "free_entry_method", "claim_days", "rules_extra")


def starting_draft() -> Draft:
    closes = (datetime.now(timezone.utc) + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    return Draft(closes_at=shown_time(closes), prizes=[PrizeRow(index=0, points="1000")])


def draft_of_form(form: dict[str, str]) -> Draft:
    indexes = sorted({int(key.split("-")[1]) for key in form if key.startswith("prize-") and key.endswith("-type")
                      and key.split("-")[1].isdigit() and len(key.split("-")[1]) <= 3})
    prizes = [PrizeRow(index=i, **{f: form.get(f"prize-{i}-{f.replace('_', '-')}", "").strip()
                                   for f in ("type", "points", "item_id", "quantity", "description")}) for i in indexes]
    return Draft(prizes=prizes, **{f: form.get(f, "").strip() for f in TEXT_FIELDS})


def spec_of(draft: Draft) -> SweepstakesSpec:
    prizes = []
    for row in draft.prizes:
        prize: dict[str, Any] = {"type": row.type, "quantity": row.quantity, "description": row.description}
        prize.update({"points": row.points} if row.type == "points" else {"item_id": row.item_id})
        prizes.append({k: v for k, v in prize.items() if v != ""})
    data: dict[str, Any] = {"name": draft.name, "description": draft.description, "rules_extra": draft.rules_extra,
                            "prizes": prizes}
    optional = {"starts_at": utc_field(draft.starts_at), "closes_at": utc_field(draft.closes_at),
                "entry_cost_points": draft.entry_cost_points,
                "max_entries_per_participant": draft.max_entries_per_participant, "winners": draft.winners,
                "alternates": draft.alternates, "sponsor": draft.sponsor, "eligibility": draft.eligibility,
                "free_entry_method": draft.free_entry_method, "claim_days": draft.claim_days}
    data.update({k: v for k, v in optional.items() if v})
    return convert(data, SweepstakesSpec, NAMES, GROUPS)


def _edited(draft: Draft, intent: str) -> Draft | None:
    if intent == "add-prize":
        return msgspec.structs.replace(draft, prizes=[*draft.prizes, PrizeRow(index=max(
            (p.index for p in draft.prizes), default=-1) + 1)])
    if intent.startswith("remove-prize-"):
        return msgspec.structs.replace(draft, prizes=[p for p in draft.prizes if f"remove-prize-{p.index}" != intent])
    return None


async def _form(request: Request[Any, Any, Any], ctx: InProgram, draft: Draft, *, preview: bool = False,
                error: str | None = None, code: int = 200) -> Response[str]:
    program = await get_program(ctx.program_id)
    pricing = pricing_of(program)
    rules, prizes = None, None
    if preview and error is None:
        try:
            spec = spec_of(draft)
            prizes = await design.prize_views(program, spec, pricing)
            rules = design.official_rules({"id": UNNAMED, "created_at": datetime.now(timezone.utc)}, spec, program,
                                          prizes)
        except DomainError as exc:
            error, code = exc.detail, status_for(exc.code)
    found = await search(program.id, pricing, limit=200)
    items = [(i.id, f"{i.brand.name} {i.name}") for i in found.items if i.value_type == "fixed"]
    return page(ctx, "console/sweepstakes_new.html", "New sweepstakes", "sweepstakes", request, code=code,
                draft=draft, items=items, rules=rules, prizes=prizes, error=error, program=program)


@get(f"{P}/sweepstakes/new", include_in_schema=False)
async def new_sweepstakes(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    return await _form(request, ctx, starting_draft())


@post(f"{P}/sweepstakes/new", include_in_schema=False, status_code=200)
async def create_sweepstakes(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    draft = draft_of_form(form)
    intent = form.get("intent", "preview")
    edited = _edited(draft, intent)
    if edited is not None:
        return await _form(request, ctx, edited)
    if intent != "create":
        return await _form(request, ctx, draft, preview=True)
    try:
        program = await get_program(program_id)
        view = await design.create(request.app.state.wallets, request.app.state.sealer, program, spec_of(draft),
                                   pricing_of(program))
    except DomainError as exc:
        return await _form(request, ctx, draft, error=exc.detail, code=status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "sweepstakes.created", view.id, name=view.name)
    return back(program_id, f"sweepstakes/{view.id}", "sweepstakes-created")


async def _names(program_id: str, winners: list[reports.WinnerView]) -> dict[str, str]:
    ids = {w.participant_id for w in winners if w.participant_id}
    return {i: i for i in ids} | await participants.display_names(program_id, ids)


async def _page(request: Request[Any, Any, Any], ctx: InProgram, sweepstakes_id: str, settings: Settings,
                error: str | None = None, code: int = 200) -> Response[str]:
    program = await get_program(ctx.program_id)
    store = request.app.state.wallets
    try:
        view = await reports.get(store, program, sweepstakes_id, pricing_of(program))
        report = await reports.report(store, program, sweepstakes_id)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such sweepstakes.", ctx=None)
    return page(ctx, "console/sweepstakes_one.html", view.name, "sweepstakes", request, code=code, sweep=view,
                report=report, names=await _names(program.id, report.winners), error=error, program=program,
                drand=settings.drand_url)


@get(f"{P}/sweepstakes/{{sweepstakes_id:str}}", include_in_schema=False)
async def sweepstakes_page(request: Request[Any, Any, Any], program_id: str, sweepstakes_id: str,
                           settings: Settings) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    return await _page(request, ctx, sweepstakes_id, settings)


@post(f"{P}/sweepstakes/{{sweepstakes_id:str}}/close", include_in_schema=False, status_code=200)
async def close(request: Request[Any, Any, Any], program_id: str, sweepstakes_id: str,
                settings: Settings) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        program = await get_program(program_id)
        view = await entries.close(request.app.state.wallets, program, sweepstakes_id, pricing_of(program))
    except DomainError as exc:
        return await _page(request, ctx, sweepstakes_id, settings, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "sweepstakes.closed", sweepstakes_id,
                       entries_hash=view.entries_hash, tickets=view.odds.total_tickets)
    return back(program_id, f"sweepstakes/{sweepstakes_id}", "sweepstakes-closed")


def _beacon(form: dict[str, str]) -> Beacon | None:
    """The beacon typed on the form, or None to let the domain fetch drand's (RW_DRAND_URL)."""
    typed = {k: form.get(f"beacon-{k}", "").strip() for k in ("source", "round", "value")}
    if not any(typed.values()):
        return None
    if typed["round"].isdigit():
        return convert({**typed, "round": int(typed["round"])}, Beacon, NAMES)
    return convert(typed, Beacon, NAMES)


@post(f"{P}/sweepstakes/{{sweepstakes_id:str}}/draw", include_in_schema=False, status_code=200)
async def draw(request: Request[Any, Any, Any], program_id: str, sweepstakes_id: str,
               settings: Settings) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    store = request.app.state.wallets
    try:
        await ensure_active(store, program_id)
        program = await get_program(program_id)
        proof = await drawing.draw(store, request.app.state.sealer, program, pricing_of(program), sweepstakes_id,
                                   _beacon(form), settings.drand_url)
    except DomainError as exc:
        return await _page(request, ctx, sweepstakes_id, settings, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "sweepstakes.drawn", sweepstakes_id,
                       beacon=proof["beacon"], winners=proof["winners"], alternates=proof["alternates"])
    return back(program_id, f"sweepstakes/{sweepstakes_id}", "sweepstakes-drawn")


class ForfeitForm(msgspec.Struct, frozen=True):
    reason: Reason


@post(f"{P}/sweepstakes/{{sweepstakes_id:str}}/winners/{{pick:int}}/forfeit", include_in_schema=False,
      status_code=200)
async def forfeit(request: Request[Any, Any, Any], program_id: str, sweepstakes_id: str, pick: int,
                  settings: Settings) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    store = request.app.state.wallets
    try:
        reason = convert({"reason": form.get("reason", "").strip()}, ForfeitForm, NAMES).reason
        await ensure_active(store, program_id)
        program = await get_program(program_id)
        await payouts.forfeit(store, request.app.state.sealer, program, pricing_of(program), sweepstakes_id, pick,
                              reason)
    except DomainError as exc:
        return await _page(request, ctx, sweepstakes_id, settings, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "sweepstakes.forfeited", sweepstakes_id,
                       pick=pick, reason=reason)
    return back(program_id, f"sweepstakes/{sweepstakes_id}", "forfeited")


ROUTES = [new_sweepstakes, create_sweepstakes, sweepstakes_page, close, draw, forfeit]
