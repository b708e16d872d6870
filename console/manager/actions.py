"""The console's changes: each is a form POST that passes the session, CSRF and role check
(console/manager/web.py `checked_form`), calls one domain use case, and redirects back to
the page it came from. A refusal from the domain is shown on an error page with its status."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Request, Response, post

from api.problems import status_for
from api.settings import Settings
from catalog.changes import change_item
from catalog.items import ItemChanges, pricing_of
from console.manager.web import InProgram, back, checked_form, refused
from fulfillment import taxes
from games import campaigns
from kernel import keys as kernel_keys
from kernel.errors import DomainError, Invalid
from kernel.idempotency import Idem
from kernel.money import MAX_MOVE
from programs import announcements, approvals, approving, audit, claims, console_users, participants, point_moves
from programs.console_users import MANAGES, OWNS
from programs.programs import get_program

P = "/console/p/{program_id:str}"


def _me(ctx: InProgram) -> str:
    """The signed-in person as the audit log names them."""
    return f"user:{ctx.signed.person.id}"


def _failed(ctx: InProgram, exc: DomainError) -> Response[str]:
    return refused(ctx, exc.detail, status_for(exc.code) if exc.code != "forbidden" else 403)


def _points(text: str) -> int:
    try:
        points = int(text.strip())
    except ValueError:
        raise Invalid("points must be a whole number", field="points") from None
    if not 0 < points <= MAX_MOVE:
        raise Invalid("points must be from 1 to 1,000,000,000,000", field="points")
    return points


async def _move(request: Request[Any, Any, Any], program_id: str, participant_id: str, kind: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    try:
        points = _points(form.get("points", ""))
        reason = form.get("reason", "").strip()
        if not reason or len(reason) > 500:
            raise Invalid("say why, in 1 to 500 characters", field="reason")
        # The form's own key: submitting the same form twice moves the points once.
        key = form.get("key", "")[:100] or hashlib.sha256(f"{participant_id}{points}{reason}".encode()).hexdigest()
        fingerprint = hashlib.sha256(f"{kind}|{participant_id}|{points}|{reason}".encode()).hexdigest()
        idem = Idem(key=kernel_keys.idempotency(program_id, f"console:{ctx.signed.person.id}", key),
                    fingerprint=fingerprint)
        reference = f"console:{ctx.signed.person.id}"
        program = await get_program(program_id)
        if approvals.needs_approval(program, points):
            # Four eyes: filed for another owner or manager; the form's key makes a double submit one request.
            request_id = "apr_" + hashlib.sha256(idem.key.encode()).hexdigest()[:26]
            await approvals.request_move(program, "grant" if kind == "grant" else "deduction", participant_id, points,
                                         reason, f"user:{ctx.signed.person.id}", request_id)
            return back(program_id, f"participants/{participant_id}", "requested")
        use_case = point_moves.grant_points if kind == "grant" else point_moves.deduct_points
        await use_case(request.app.state.wallets, program_id, participant_id, points, reason, idem, reference,
                       actor=f"user:{ctx.signed.person.id}")
    except DomainError as exc:
        return _failed(ctx, exc)
    return back(program_id, f"participants/{participant_id}", "granted" if kind == "grant" else "deducted")


@post(f"{P}/approvals/{{request_id:str}}/decide", include_in_schema=False, status_code=200)
async def decide_approval(request: Request[Any, Any, Any], program_id: str, request_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    verdict = form.get("verdict")
    reason = form.get("reason", "").strip()[:500] or None
    me = f"user:{ctx.signed.person.id}"
    try:
        if verdict == "approved":
            state = request.app.state
            await approving.approve(state.wallets, state.sealer, program_id, request_id, me, reason,
                                    gateway=getattr(state, "stripe", None))
        elif verdict == "rejected":
            if not reason:
                return refused(ctx, "A rejection needs a reason.", 422)
            await approvals.reject(program_id, request_id, me, reason)
        else:
            return refused(ctx, "Choose approve or reject.", 422)
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, me, f"approval.{verdict}", request_id, reason=reason)
    return back(program_id, "approvals", "move-" + verdict)


@post(f"{P}/participants/{{participant_id:str}}/grant", include_in_schema=False, status_code=200)
async def grant(request: Request[Any, Any, Any], program_id: str, participant_id: str) -> Response[Any]:
    return await _move(request, program_id, participant_id, "grant")


@post(f"{P}/participants/{{participant_id:str}}/deduct", include_in_schema=False, status_code=200)
async def deduct(request: Request[Any, Any, Any], program_id: str, participant_id: str) -> Response[Any]:
    return await _move(request, program_id, participant_id, "deduct")


@post(f"{P}/participants/{{participant_id:str}}/deactivate", include_in_schema=False, status_code=200)
async def deactivate(request: Request[Any, Any, Any], program_id: str, participant_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        await participants.deactivate_participant(request.app.state.wallets, program_id, participant_id)
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), "participant.deactivated", participant_id)
    return back(program_id, f"participants/{participant_id}", "deactivated")


@post(f"{P}/tax-report", include_in_schema=False, status_code=200)
async def tax_report(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    """The year-end tax report, as GET /v1/program/tax-report answers it: owners only, since
    it holds whole taxpayer ids, and each download is on the audit log."""
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    year_text = form.get("year", "").strip()
    if not year_text.isdigit() or not 1900 <= int(year_text) <= 2199:
        return refused(ctx, "Choose a tax year from 1900 to 2199.", 422)
    year = int(year_text)
    text = await taxes.report_csv(await get_program(program_id), year, request.app.state.sealer)
    await audit.record(program_id, _me(ctx), "tax_report.exported", str(year))
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="tax-report-{year}.csv"',
                             "Cache-Control": "no-store"})


CAMPAIGN_ACTIONS = {"launch": "launched", "pause": "paused", "resume": "resumed", "end": "ended"}


@post(f"{P}/spin-campaigns/{{campaign_id:str}}/{{action:str}}", include_in_schema=False, status_code=200)
async def campaign_action(request: Request[Any, Any, Any], program_id: str, campaign_id: str,
                          action: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    if action not in CAMPAIGN_ACTIONS:
        return refused(ctx, "There is no such action.", 404)
    wallets = request.app.state.wallets
    try:
        program = await get_program(program_id)
        pricing = pricing_of(program)
        if action in ("launch", "resume"):
            await campaigns.launch(wallets, program, campaign_id, pricing, request.app.state.sealer)
        elif action == "pause":
            await campaigns.pause(wallets, program, campaign_id, pricing)
        else:
            await campaigns.end(wallets, program, campaign_id, pricing)
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), f"campaign.{CAMPAIGN_ACTIONS[action]}", campaign_id)
    return back(program_id, f"spin-campaigns/{campaign_id}", CAMPAIGN_ACTIONS[action])


@post(f"{P}/claims/{{claim_id:str}}/decide", include_in_schema=False, status_code=200)
async def decide_claim(request: Request[Any, Any, Any], program_id: str, claim_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    verdict = form.get("verdict")
    reason = form.get("reason", "").strip()[:500] or None
    if verdict not in ("approved", "rejected"):
        return refused(ctx, "Choose approve or reject.", 422)
    if verdict == "rejected" and not reason:
        return refused(ctx, "A rejection needs a reason the participant will read.", 422)
    try:
        await claims.decide_claim(request.app.state.wallets, program_id, claim_id, verdict, reason)
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), f"claim.{verdict}", claim_id, reason=reason)
    return back(program_id, "claims", verdict)


@post(f"{P}/catalog/{{item_id:str}}/status", include_in_schema=False, status_code=200)
async def item_status(request: Request[Any, Any, Any], program_id: str, item_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    status = form.get("status")
    if status not in ("active", "disabled"):
        return refused(ctx, "Choose enable or disable.", 422)
    try:
        await change_item(request.app.state.redis, program_id, item_id, ItemChanges(status=status))  # type: ignore[arg-type]
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), "catalog.item_" + ("enabled" if status == "active" else "disabled"), item_id)
    return back(program_id, "catalog", "enabled" if status == "active" else "disabled")


@post(f"{P}/users/invite", include_in_schema=False, status_code=200)
async def invite(request: Request[Any, Any, Any], program_id: str, settings: Settings) -> Response[Any]:
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    try:
        spec = msgspec.convert({"email": form.get("email", "").strip(), "display_name": form.get("display_name", "").strip(),
                                "role": form.get("role", "")}, console_users.NewConsoleUser)
    except msgspec.ValidationError as exc:
        return refused(ctx, f"Check the form: {exc}", 422)
    try:
        await console_users.add_console_user(program_id, spec, settings.public_base, request.app.state.mailer)
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), "user.invited", spec.email, role=spec.role)
    return back(program_id, "users", "invited")


@post(f"{P}/users/{{user_id:str}}/role", include_in_schema=False, status_code=200)
async def change_role(request: Request[Any, Any, Any], program_id: str, user_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    role = form.get("role")
    if role not in console_users.ROLES:
        return refused(ctx, "Choose owner, manager or viewer.", 422)
    try:
        await console_users.change_role(program_id, user_id, role)  # type: ignore[arg-type]
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), "user.role_changed", user_id, role=role)
    return back(program_id, "users", "role")


@post(f"{P}/users/{{user_id:str}}/remove", include_in_schema=False, status_code=200)
async def remove(request: Request[Any, Any, Any], program_id: str, user_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        await console_users.remove_member(program_id, user_id)
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), "user.removed", user_id)
    return back(program_id, "users", "removed")


@post(f"{P}/announcements", include_in_schema=False, status_code=200)
async def announce(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    segments = [s.strip() for s in form.get("segments", "").split(",") if s.strip()]
    team_id = form.get("team_id", "").strip()
    try:
        spec = msgspec.convert({
            "title": form.get("title", "").strip(), "body": form.get("body", "").strip(),
            "audience": {**({"segments": segments} if segments else {}), **({"team_ids": [team_id]} if team_id else {})},
            "email": form.get("email") == "on"}, announcements.NewAnnouncement)
    except msgspec.ValidationError as exc:
        return refused(ctx, f"The announcement is not valid: {exc}", 422)
    try:
        await announcements.announce(await get_program(program_id), spec, sent_by=f"user:{ctx.signed.person.id}")
    except DomainError as exc:
        return _failed(ctx, exc)
    await audit.record(program_id, _me(ctx), "announcement.sent", spec.title)
    return back(program_id, "announcements", "announced")


ROUTES = [grant, deduct, deactivate, tax_report, announce, decide_approval, campaign_action, decide_claim, item_status, invite, change_role, remove]
