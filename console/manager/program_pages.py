"""The console's pages inside one program (`/console/p/{program_id}/...`): each reads
through the domain's own read functions, so a number here is the number the API answers."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import urlencode
from typing import Any, get_args

from litestar import Request, Response, get

from catalog.items import pricing_of, search
from console.manager.web import InProgram, in_program, page, refused, render
from console.manager.charts import grouped_bars
from fulfillment import order_counts, orders, partners
from fulfillment.orders import OrderStatus
from games import campaigns, spins
from games.sweepstakes import report as sweepstakes_report
from kernel.errors import DomainError
from programs import (announcements, approvals, audit, budget, claims, console_users, participant_imports,
                      history_reasons, participants, pending, rulebook, standings, tax_profiles, waiting)
from programs.programs import get_program
from programs.teams import list_teams
from wallet import accounts, daily, journal, ledger

P = "/console/p/{program_id:str}"
ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)


async def _ctx(request: Request[Any, Any, Any], program_id: str) -> InProgram | Response[Any]:
    return await in_program(request, program_id)


@get(f"{P}/overview", include_in_schema=False)
async def overview(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    pricing = pricing_of(program)
    wallets = request.app.state.wallets
    figures = await budget.budget_view(wallets, program)
    active = await campaigns.list_campaigns(program_id, pricing, 100, None, "active")
    running = [s for status in ("open", "closed")
               for s in (await sweepstakes_report.list_all(wallets, program, pricing, 20, status=status)).items]  # type: ignore[arg-type]
    counts = await order_counts.by_status(program_id)
    days = await daily.last_days(program_id, 90)
    behind, oldest = await journal.lag(request.app.state.redis, program_id)
    chart = grouped_bars([d.day.isoformat() for d in days], [
        ("Issued", "issued", [d.issued for d in days]), ("Redeemed", "redeemed", [d.redeemed for d in days])])
    return page(ctx, "console/overview.html", "Overview", "overview", request, program=program, budget=figures,
                breakage=budget.expected_breakage(figures), active=active.items,
                sweepstakes=running,
                claims_waiting=await waiting.claims_waiting(program_id),
                approvals_waiting=await waiting.approvals_waiting(program_id),
                orders=[(status, counts.get(status, 0)) for status in ORDER_STATUSES],
                stuck=await order_counts.stuck(program_id), days=days, chart=chart,
                lag_entries=behind, lag_seconds=(max(0.0, datetime.now(timezone.utc).timestamp() - oldest / 1000) if oldest else 0.0),
                issued_90=sum(d.issued for d in days), redeemed_90=sum(d.redeemed for d in days))


@get(f"{P}/participants", include_in_schema=False)
async def participant_list(request: Request[Any, Any, Any], program_id: str, q: str | None = None) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    q = (q or "").strip()[:200] or None
    found = await participants.list_participants(program_id, 50, None, q)
    return page(ctx, "console/participants.html", "Participants", "participants", request, q=q or "",
                people=found.items, more=found.next_cursor is not None,
                imports=await participant_imports.recent_imports(program_id, 5))


@get(f"{P}/participants/{{participant_id:str}}", include_in_schema=False)
async def participant_page(request: Request[Any, Any, Any], program_id: str, participant_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    try:
        person = await participants.get_participant(program_id, participant_id)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such participant.", ctx=None)
    program = await get_program(program_id)
    wallet = await accounts.wallet_view(request.app.state.wallets, program_id, participant_id)
    # The lots again with their ids (the wallet's view leaves ids out): a manager releases one by id.
    lots = (await pending.lots_of(request.app.state.wallets, program_id, participant_id, 100)).items \
        if wallet.pending_lots else []
    history = await ledger.transactions(request.app.state.redis, program_id, participant_id, 20, None)
    their_orders = await orders.list_orders(program_id, limit=10, participant_id=participant_id, admin=True,
                                            journal=request.app.state.redis)
    their_spins = await spins.my_spins(request.app.state.redis, program_id, participant_id, 10)
    # The tax form's status, legal name and the last 4 digits of the TIN: never more here.
    tax_form = await tax_profiles.profile(program_id, participant_id, request.app.state.sealer)
    # The items Redeem for participant offers (only to those who may use it).
    items = (await search(program_id, pricing_of(program), limit=200)).items if ctx.can_manage else []
    return page(ctx, "console/participant.html", person.display_name, "participants", request, person=person,
                program=program, wallet=wallet, lots=lots, history=history.items, tax_form=tax_form,
                why=await history_reasons.reasons(program_id, history.items), orders=their_orders.items,
                spins=their_spins.items, items=items,
                # One key per form shown: a double submit replays the first move.
                grant_key=secrets.token_urlsafe(16), deduct_key=secrets.token_urlsafe(16),
                redeem_key=secrets.token_urlsafe(16))


@get(f"{P}/earning-rules", include_in_schema=False)
async def earning_rules(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    rules = await rulebook.rule_page(program_id, True, 200, None)
    return page(ctx, "console/earning_rules.html", "Earning rules", "earning-rules", request, rules=rules.items)


@get(f"{P}/claims", include_in_schema=False)
async def claim_queue(request: Request[Any, Any, Any], program_id: str, status: str | None = None) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    chosen = status if status in ("pending", "approved", "rejected", "duplicate") else "pending"
    found = await claims.list_claims(program_id, 100, None, chosen)  # type: ignore[arg-type]
    return page(ctx, "console/claims.html", "Claims", "claims", request, claims=found.items, status=chosen,
                statuses=("pending", "approved", "rejected", "duplicate"))


@get(f"{P}/orders.csv", include_in_schema=False)
async def order_export(request: Request[Any, Any, Any], program_id: str, status: str | None = None) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    chosen = status if status in ORDER_STATUSES else None
    text = await orders.export_csv(program_id, chosen)  # type: ignore[arg-type]
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="orders-{program_id}.csv"'})


@get(f"{P}/spin-campaigns", include_in_schema=False)
async def campaign_list(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    found = await campaigns.list_campaigns(program_id, pricing_of(program), 200)
    return page(ctx, "console/campaigns.html", "Spin campaigns", "spin-campaigns", request, campaigns=found.items)


@get(f"{P}/sweepstakes", include_in_schema=False)
async def sweepstakes_list(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    found = await sweepstakes_report.list_all(request.app.state.wallets, program, pricing_of(program), 100)
    return page(ctx, "console/sweepstakes.html", "Sweepstakes", "sweepstakes", request, sweepstakes=found.items)


@get(f"{P}/leaderboards", include_in_schema=False)
async def leaderboards(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    found = await standings.leaderboard_page(program_id, 100)
    return page(ctx, "console/leaderboards.html", "Leaderboards", "leaderboards", request, boards=found.items)


@get(f"{P}/partners", include_in_schema=False)
async def partner_list(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    found = await partners.list_partners(program_id)
    return page(ctx, "console/partners.html", "Partners", "partners", request, partners=found)


@get(f"{P}/users", include_in_schema=False)
async def user_list(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    if not ctx.is_owner:
        return refused(ctx, "Only a program owner manages its console users.")
    members = await console_users.program_members(program_id)
    return page(ctx, "console/users.html", "Users", "users", request, members=members, roles=console_users.ROLES,
                me=ctx.signed.person.id)


@get(f"{P}/claims/{{claim_id:str}}/receipt", include_in_schema=False)
async def claim_receipt(request: Request[Any, Any, Any], program_id: str, claim_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    try:
        jpeg = await claims.receipt_of(program_id, claim_id, request.app.state.settings.data_path)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="This claim has no receipt photo.",
                      ctx=None)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@get(f"{P}/approvals", include_in_schema=False)
async def approval_list(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    waiting = await approvals.list_requests(program_id, "pending", 100)
    decided = [r for r in (await approvals.list_requests(program_id, None, 50)).items if r.status != "pending"]
    people = await participants.display_names(
        program_id, {r.participant_id for r in [*waiting.items, *decided] if r.participant_id})
    return page(ctx, "console/approvals.html", "Approvals", "approvals", request, program=program,
                waiting=waiting.items, decided=decided, me=f"user:{ctx.signed.person.id}",
                names=await _actor_names(program_id), people=people)


async def _actor_names(program_id: str) -> dict[str, str]:
    """"user:<id>" -> the person's name and email, as the audit log and Approvals show them."""
    return {f"user:{m.id}": f"{m.display_name} ({m.email})" for m in await console_users.program_members(program_id)}


@get(f"{P}/announcements", include_in_schema=False)
async def announcement_list(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    sent = await announcements.list_announcements(program_id, 50)
    teams = await list_teams(program_id, 200, None)
    return page(ctx, "console/announcements.html", "Announcements", "announcements", request, sent=sent.items,
                teams=teams.items)


def _day(text: str | None) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(text), time(0), timezone.utc) if text else None
    except ValueError:
        return None


async def _audit_filters(program_id: str, actor: str | None, kind: str | None, since: str | None,
                         until: str | None) -> dict[str, Any]:
    until_day = _day(until)
    return {"actor": (actor or "").strip()[:120] or None, "kind": (kind or "").strip()[:40] or None,
            "since": _day(since), "until": until_day + timedelta(days=1) if until_day else None}


@get(f"{P}/audit-log", include_in_schema=False)
async def audit_log(request: Request[Any, Any, Any], program_id: str, actor: str | None = None,
                    kind: str | None = None, since: str | None = None, until: str | None = None) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    filters = await _audit_filters(program_id, actor, kind, since, until)
    found = await audit.events(program_id, limit=200, **filters)
    names = await _actor_names(program_id)
    query = urlencode({k: v for k, v in {"actor": actor, "kind": kind, "since": since, "until": until}.items() if v})
    return page(ctx, "console/audit_log.html", "Audit log", "audit-log", request, events=found.items,
                more=found.next_cursor is not None, names=names, actors=sorted(names.items(), key=lambda a: a[1]),
                actor=filters["actor"], kind=filters["kind"], since=since, until=until, query=query)


@get(f"{P}/audit-log.csv", include_in_schema=False)
async def audit_export(request: Request[Any, Any, Any], program_id: str, actor: str | None = None,
                       kind: str | None = None, since: str | None = None, until: str | None = None) -> Response[Any]:
    ctx = await _ctx(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    text = await audit.export_csv(program_id, **await _audit_filters(program_id, actor, kind, since, until))
    return Response(text, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


ROUTES = [overview, participant_list, participant_page, earning_rules, claim_queue,
          order_export, campaign_list, sweepstakes_list, leaderboards, partner_list,
          user_list, announcement_list, claim_receipt, approval_list, audit_log, audit_export]
