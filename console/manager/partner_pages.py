"""Partners in the console (owner only for changes, as keys and webhooks are): add a partner,
its page with the webhook URL and its delivery log, a new key, disable and enable. A key or
a webhook secret is shown once, on the answer to the POST that made it, never in a URL."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from api.problems import status_for
from api.settings import Settings
from console.manager.web import InProgram, back, checked_form, in_program, page, refused, render
from fulfillment import partner_admin, partners, webhooks
from kernel.errors import DomainError, Invalid
from programs import audit
from programs.console_users import OWNS
from programs.programs import get_program

P = "/console/p/{program_id:str}"


def _me(ctx: InProgram) -> str:
    return f"user:{ctx.signed.person.id}"


async def _partner_page(request: Request[Any, Any, Any], ctx: InProgram, partner_id: str, code: int = 200,
                        **shown: Any) -> Response[Any]:
    try:
        partner = await partners.partner_view(ctx.program_id, partner_id)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such partner.", ctx=None)
    log = await webhooks.deliveries(ctx.program_id, partner_id, 50)
    return page(ctx, "console/partner.html", partner.name, "partners", request, code, partner=partner,
                deliveries=log.items, **shown)


@get(f"{P}/partners/{{partner_id:str}}", include_in_schema=False)
async def partner_page(request: Request[Any, Any, Any], program_id: str, partner_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    return await _partner_page(request, ctx, partner_id)


@post(f"{P}/partners/new", include_in_schema=False, status_code=200)
async def add_partner(request: Request[Any, Any, Any], program_id: str, settings: Settings) -> Response[Any]:
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    try:
        name = form.get("name", "").strip()
        if not name or len(name) > 200:
            raise Invalid("a partner's name has 1 to 200 characters", field="name")
        spec = partners.NewPartner(name=name, default=form.get("default") == "on",
                                   webhook_url=form.get("webhook_url", "").strip() or None)
        created = await partners.create_partner(request.app.state.wallets.client, program_id, spec,
                                                request.app.state.sealer,
                                                settings.webhook_allow_private)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, _me(ctx), "partner.created", created.id, name=created.name,
                       webhook=bool(created.webhook_secret))
    return await _partner_page(request, ctx, created.id, api_key=created.api_key, secret=created.webhook_secret)


@post(f"{P}/partners/{{partner_id:str}}/webhook", include_in_schema=False, status_code=200)
async def set_webhook(request: Request[Any, Any, Any], program_id: str, partner_id: str,
                      settings: Settings) -> Response[Any]:
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    url = form.get("webhook_url", "").strip() or None
    try:
        if url is not None and (len(url) > 1000 or not url.startswith(("http://", "https://")) or " " in url):
            raise Invalid("a webhook URL starts with https:// (or http://) and has no spaces", field="webhook_url")
        answer = await partners.set_webhook(request.app.state.wallets.client, program_id, partner_id, url,
                                            request.app.state.sealer,
                                            settings.webhook_allow_private)
    except DomainError as exc:
        return await _partner_page(request, ctx, partner_id, status_for(exc.code), error=exc.detail)
    await audit.record(program_id, _me(ctx), "partner.webhook", partner_id, url=url)
    return await _partner_page(request, ctx, partner_id, secret=answer.secret, done_text=(
        "Webhook set: new orders are POSTed there, signed with the secret below." if url else
        "Webhook removed: the partner pulls its orders."))


@post(f"{P}/partners/{{partner_id:str}}/key", include_in_schema=False, status_code=200)
async def rotate_key(request: Request[Any, Any, Any], program_id: str, partner_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        api_key = await partner_admin.new_partner_key(request.app.state.wallets, program_id, partner_id)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, _me(ctx), "partner.key_rotated", partner_id)
    return await _partner_page(request, ctx, partner_id, api_key=api_key)


@post(f"{P}/partners/{{partner_id:str}}/{{status:str}}", include_in_schema=False, status_code=200)
async def change_status(request: Request[Any, Any, Any], program_id: str, partner_id: str,
                        status: str) -> Response[Any]:
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    if status not in ("disable", "enable"):
        return refused(ctx, "There is no such action.", 404)
    try:
        await partner_admin.change_partner_status(request.app.state.wallets, request.app.state.sealer,
                                                  await get_program(program_id), partner_id,
                                                  "disabled" if status == "disable" else "active")
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, _me(ctx), f"partner.{status}d", partner_id)
    return back(program_id, f"partners/{partner_id}", f"partner-{status}d")


ROUTES = [partner_page, add_partner, set_webhook, rotate_key, change_status]
