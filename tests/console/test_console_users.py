"""The manager console through HTTP, as a browser speaks it (forms, a session cookie,
redirects): invites, sign-in, sessions, CSRF and what each role may change."""

from __future__ import annotations

import asyncio
import html
import re
import secrets
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from tests.console.sessions import (PASSWORD, accept, attempt, csrf_of, get, invite, new_email, person_in, post,
                                    sign_in)
from programs import console_sessions
from tests.factories import (available, away_from_a_window_edge, catalog_item, launched_wheel, new_participant,
                             new_program, random_ref, wait_until)

pytestmark = pytest.mark.sql

async def test_an_invite_sets_a_password_once_and_signs_in(client: Any, settings: Any) -> None:
    program = await new_program(client)
    email = new_email()
    created = await invite(client, program, email.upper(), "manager")
    assert created["email"] == email and created["role"] == "manager"
    assert created["invite_url"].startswith(settings.public_base + "/console/invite/")
    path = "/" + created["invite_url"].split("://", 1)[1].split("/", 1)[1]
    # A link preview opens it: the form shows, nothing is spent.
    for _ in range(2):
        shown = await client.get(follow_redirects=False, url=path)
        assert shown.status_code == 200 and 'type="password"' in shown.text
    assert (await accept(client, created["invite_url"], "short")).status_code == 422
    assert (await accept(client, created["invite_url"])).status_code == 303
    again = await accept(client, created["invite_url"], "another long password")
    assert again.status_code == 404, "an invite is spent by its first use"
    session = await sign_in(client, email)
    home = await get(client, "/console", session)
    assert home.status_code == 303 and home.headers["location"] == f"/console/p/{program.id}/overview"
    overview = await get(client, home.headers["location"], session)
    assert overview.status_code == 200 and "Casey Manager" in overview.text


async def test_the_same_email_again_adds_a_program_and_a_switcher(client: Any) -> None:
    first, second = await new_program(client), await new_program(client)
    email = new_email()
    created = await invite(client, first, email)
    await accept(client, created["invite_url"])
    added = await invite(client, second, email.title(), "viewer")
    assert added["id"] == created["id"] and added["role"] == "viewer"
    assert added["invite_url"] is None, "a person with a password signs in as they are"
    session = await sign_in(client, email)
    page = await get(client, f"/console/p/{second.id}/overview", session)
    assert 'aria-label="Programs"' in page.text
    assert f"/console/p/{first.id}/overview" in page.text
    other = await new_program(client)
    assert (await get(client, f"/console/p/{other.id}/overview", session)).status_code == 404


async def test_a_wrong_password_and_an_unknown_email_look_the_same(client: Any) -> None:
    program = await new_program(client)
    email, _ = await person_in(client, program, "owner")
    wrong = await attempt(client, email, "not the password")
    unknown = await attempt(client, new_email(), "not the password")
    assert wrong.status_code == unknown.status_code == 200
    assert 'role="alert"' in wrong.text
    alert = re.search(r'role="alert">([^<]+)<', wrong.text)
    assert alert and alert.group(1) == re.search(r'role="alert">([^<]+)<', unknown.text).group(1)  # type: ignore[union-attr]
    assert "rw_console=" not in ";".join(wrong.headers.get_list("set-cookie"))


async def test_a_sign_in_without_the_forms_token_is_refused(client: Any) -> None:
    program = await new_program(client)
    email, _ = await person_in(client, program, "owner")
    forged = await client.post(follow_redirects=False, url="/console/sign-in",
                               data={"email": email, "password": PASSWORD, "csrf": "guessed"},
                               headers={"Cookie": "rw_console_pre=other"})
    client.cookies.clear()
    assert forged.status_code == 403
    assert "rw_console=" not in ";".join(forged.headers.get_list("set-cookie"))


async def test_failed_sign_ins_are_limited_per_email(client: Any) -> None:
    program = await new_program(client)
    email, _ = await person_in(client, program, "owner")
    # Failures count per fixed window: ones straddling its edge would be counted apart.
    await away_from_a_window_edge(console_sessions.FAILURE_WINDOW)
    for _ in range(5):
        assert 'role="alert"' in (await attempt(client, email, "guess " * 3)).text
    refused = await attempt(client, email, PASSWORD)
    assert refused.status_code == 429 and 'role="alert"' in refused.text
    assert "rw_console=" not in ";".join(refused.headers.get_list("set-cookie"))


async def test_the_session_cookie_is_http_only_and_strict(client: Any) -> None:
    program = await new_program(client)
    email = new_email()
    await accept(client, (await invite(client, program, email))["invite_url"])
    response = await attempt(client, email, PASSWORD)
    cookie = [c for c in response.headers.get_list("set-cookie") if c.startswith("rw_console=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie, "the test app's public URL is http"
    assert (await client.get(follow_redirects=False, url="/console/p/x/overview")).headers["location"] == "/console/sign-in"


async def test_every_page_renders_for_an_owner_with_the_navigation(client: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "owner")
    overview = await get(client, f"/console/p/{program.id}/overview", session)
    links = re.findall(r'<a href="(/console/p/[^"]+)"[^>]*>([^<]+)</a>', overview.text)
    names = [name for _, name in links]
    for name in ("Overview", "Participants", "Earning rules", "Claims", "Approvals", "Catalog", "Orders",
                 "Spin campaigns", "Sweepstakes", "Leaderboards", "Announcements", "Funding", "Partners",
                 "Audit log", "Users"):
        assert name in names
    assert ">Sign out</button>" in overview.text
    for href, _ in links:
        page = await get(client, html.unescape(href), session)
        assert page.status_code == 200, (href, page.text)
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
    # The stylesheet under its content version: cached for a year; the bare name still answers.
    href = re.search(r'<link rel="stylesheet" href="([^"]+)"', overview.text).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"/console/static/[0-9a-f]{12}/console\.css", href), href
    css = await client.get(follow_redirects=False, url=href)
    assert css.status_code == 200 and css.headers["cache-control"] == "public, max-age=31536000, immutable"
    bare = await client.get(follow_redirects=False, url="/console/static/console.css")
    assert bare.status_code == 200 and bare.content == css.content and "no-cache" in bare.headers["cache-control"]


async def test_campaign_buttons_follow_its_status(client: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "manager")
    design = {"name": "Spring wheel", "cost_points": 0, "segments": [
        {"label": "Try again", "weight": 1, "prize": {"type": "nothing"}}]}
    campaign_id = (await client.post(follow_redirects=False, url="/v1/campaigns/spin", json=design, headers=program.headers)).json()["id"]
    listing = await get(client, f"/console/p/{program.id}/spin-campaigns", session)
    assert "Spring wheel" in listing.text and "draft" in listing.text
    page_path = f"/console/p/{program.id}/spin-campaigns/{campaign_id}"
    for button, action, status in (("Launch", "launch", "active"), ("Pause", "pause", "paused"),
                                   ("Resume", "resume", "active")):
        page = await get(client, page_path, session)
        assert f">{button}</button>" in page.text
        done = await post(client, f"{page_path}/{action}", session, {"csrf": csrf_of(page.text)})
        assert done.status_code == 303, done.text
        read = await client.get(follow_redirects=False, url=f"/v1/campaigns/{campaign_id}", headers=program.headers)
        assert read.json()["status"] == status
    assert ">Launch</button>" not in (await get(client, page_path, session)).text
    page = await get(client, page_path, session)
    ended = await post(client, f"{page_path}/end", session, {"csrf": csrf_of(page.text)})
    assert ended.status_code == 303
    assert (await client.get(f"/v1/campaigns/{campaign_id}", headers=program.headers)).json()["status"] == "ended"
    after = await get(client, page_path, session)
    assert not re.search(r">(Launch|Pause|Resume|End)</button>", after.text)
    unknown = await post(client, f"{page_path}/explode", session, {"csrf": csrf_of(after.text)})
    assert unknown.status_code == 404


async def test_a_grant_from_the_console_moves_points_once(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program, display_name="Jill Dawson-" + secrets.token_hex(3))
    _, session = await person_in(client, program, "owner")
    found = await get(client, f"/console/p/{program.id}/participants?q={person['display_name']}", session)
    assert f"/participants/{person['id']}" in found.text
    page = await get(client, f"/console/p/{program.id}/participants/{person['id']}", session)
    key = re.search(r'name="key" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf_of(page.text), "key": key, "points": "150", "reason": "Completed training"}
    for _ in range(2):  # a double submit of the same form
        done = await post(client, f"/console/p/{program.id}/participants/{person['id']}/grant", session, form)
        assert done.status_code == 303, done.text
    assert await available(client, program, person["id"]) == 150
    bad = await post(client, f"/console/p/{program.id}/participants/{person['id']}/deduct", session,
                     {**form, "key": "other", "points": "1000"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert await available(client, program, person["id"]) == 150
    page = await get(client, f"/console/p/{program.id}/participants/{person['id']}", session)
    gone = await post(client, f"/console/p/{program.id}/participants/{person['id']}/deactivate", session,
                      {"csrf": csrf_of(page.text)})
    assert gone.status_code == 303, gone.text
    read = await client.get(f"/v1/participants/{person['id']}", headers=program.headers)
    assert read.json()["status"] == "deactivated"
    page = await get(client, gone.headers["location"], session)
    assert "Participant deactivated." in page.text and "Deactivate participant" not in page.text


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    _, session = await person_in(client, program, "owner")
    target = f"/console/p/{program.id}/participants/{person['id']}/grant"
    for form in ({"points": "10", "reason": "x"}, {"points": "10", "reason": "x", "csrf": "forged"}):
        refused = await post(client, target, session, form)
        assert refused.status_code == 403
    assert await available(client, program, person["id"]) == 0
    other_program = await new_program(client)
    _, other_session = await person_in(client, other_program, "owner")
    other_page = await get(client, f"/console/p/{other_program.id}/overview", other_session)
    # Another session's token is not this session's.
    assert (await post(client, target, session, {"points": "10", "reason": "x",
                                                 "csrf": csrf_of(other_page.text)})).status_code == 403


async def test_a_viewer_sees_pages_but_no_buttons_and_the_server_refuses(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    campaign_id = await launched_wheel(client, program, cost_points=0)
    await client.post(follow_redirects=False, url=f"/v1/campaigns/{campaign_id}/pause", headers=program.headers)
    _, session = await person_in(client, program, "viewer")
    campaign_page = await get(client, f"/console/p/{program.id}/spin-campaigns/{campaign_id}", session)
    assert campaign_page.status_code == 200
    assert ">Resume</button>" not in campaign_page.text and ">Launch</button>" not in campaign_page.text
    participant_page = await get(client, f"/console/p/{program.id}/participants/{person['id']}", session)
    assert "Grant points" not in participant_page.text
    csrf = csrf_of(participant_page.text)  # the Sign out form's: a viewer's own token
    assert "Users" not in re.findall(r">([^<]+)</a>", participant_page.text)
    for path, form in ((f"participants/{person['id']}/grant", {"points": "5", "reason": "x"}),
                       (f"spin-campaigns/{campaign_id}/resume", {}),
                       ("users/invite", {"email": new_email(), "display_name": "X", "role": "owner"})):
        refused = await post(client, f"/console/p/{program.id}/{path}", session, {**form, "csrf": csrf})
        assert refused.status_code == 403, path
    assert await available(client, program, person["id"]) == 0
    read = await client.get(follow_redirects=False, url=f"/v1/campaigns/{campaign_id}", headers=program.headers)
    assert read.json()["status"] == "paused"


async def test_a_manager_is_refused_owner_only_changes(client: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "manager")
    page = await get(client, f"/console/p/{program.id}/overview", session)
    assert (await get(client, f"/console/p/{program.id}/users", session)).status_code == 403
    email = new_email()
    refused = await post(client, f"/console/p/{program.id}/users/invite", session,
                         {"csrf": csrf_of(page.text), "email": email, "display_name": "Sneaky", "role": "owner"})
    assert refused.status_code == 403
    from programs.console_users import find_person

    assert await find_person(email) is None


async def test_an_owner_invites_by_email_changes_a_role_and_removes(client: Any, settings: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "owner")
    users = await get(client, f"/console/p/{program.id}/users", session)
    email = new_email()
    before = set(Path(settings.outbox_path).glob("*.eml")) if Path(settings.outbox_path).exists() else set()
    sent = await post(client, f"/console/p/{program.id}/users/invite", session,
                      {"csrf": csrf_of(users.text), "email": email, "display_name": "Nina New", "role": "manager"})
    assert sent.status_code == 303, sent.text
    new_files = set(Path(settings.outbox_path).glob("*.eml")) - before
    messages = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in new_files]
    mine = [m for m in messages if m["To"] == email]
    assert len(mine) == 1
    link = re.search(r"(\S+/console/invite/\S+)", mine[0].get_content())
    assert link and link.group(1).startswith(settings.public_base)
    await accept(client, link.group(1))
    nina = await sign_in(client, email)
    assert (await get(client, f"/console/p/{program.id}/overview", nina)).status_code == 200
    users = await get(client, f"/console/p/{program.id}/users", session)
    nina_id = re.search(r'/users/([^/]+)/role', users.text).group(1)  # type: ignore[union-attr]
    changed = await post(client, f"/console/p/{program.id}/users/{nina_id}/role", session,
                         {"csrf": csrf_of(users.text), "role": "viewer"})
    assert changed.status_code == 303
    assert "viewer" in (await get(client, f"/console/p/{program.id}/users", session)).text
    removed = await post(client, f"/console/p/{program.id}/users/{nina_id}/remove", session,
                         {"csrf": csrf_of(users.text)})
    assert removed.status_code == 303
    assert (await get(client, f"/console/p/{program.id}/overview", nina)).status_code == 404


async def test_sign_out_ends_the_session_and_everywhere_ends_all(client: Any) -> None:
    program = await new_program(client)
    email, first = await person_in(client, program, "viewer")
    second = await sign_in(client, email)
    third = await sign_in(client, email)
    page = await get(client, f"/console/p/{program.id}/overview", first)
    assert (await post(client, "/console/sign-out", first, {})).status_code == 403, "sign out needs the token too"
    out = await post(client, "/console/sign-out", first, {"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and "max-age=0" in out.headers["set-cookie"].lower()
    assert (await get(client, f"/console/p/{program.id}/overview", first)).status_code == 303
    assert (await get(client, f"/console/p/{program.id}/overview", second)).status_code == 200
    page = await get(client, f"/console/p/{program.id}/overview", second)
    assert (await post(client, "/console/sign-out-everywhere", second, {"csrf": csrf_of(page.text)})).status_code == 303
    for session in (second, third):
        assert (await get(client, f"/console/p/{program.id}/overview", session)).status_code == 303


async def test_orders_export_and_catalog_disable(client: Any) -> None:
    program = await new_program(client)
    item = await catalog_item(client, program)
    _, session = await person_in(client, program, "manager")
    export = await get(client, f"/console/p/{program.id}/orders.csv", session)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    catalog = await get(client, f"/console/p/{program.id}/catalog", session)
    assert item["name"] in catalog.text
    done = await post(client, f"/console/p/{program.id}/catalog/{item['id']}/status", session,
                      {"csrf": csrf_of(catalog.text), "status": "disabled"})
    assert done.status_code == 303, done.text
    read = await client.get(follow_redirects=False, url=f"/v1/catalog/items/{item['id']}", headers=program.headers)
    assert read.json()["status"] == "disabled"


@pytest.mark.parametrize("body", [{"email": "nope", "display_name": "X", "role": "owner"},
                                  {"email": "a@b.example", "display_name": "X", "role": "admin"},
                                  {"email": "a@b.example", "display_name": "", "role": "owner"}])
async def test_bad_console_user_bodies_are_refused(client: Any, body: dict[str, str]) -> None:
    program = await new_program(client)
    response = await client.post(follow_redirects=False, url="/v1/console-users", json=body, headers=program.headers)
    assert response.status_code in (400, 422), response.text


async def test_every_page_renders_a_program_full_of_things_and_a_claim_is_decided(client: Any, redis: Any) -> None:
    from tests.factories import OPERATOR, leaderboard, new_sweepstakes, redeem, shop, shopper

    program, _, item = await shop(client, face_value=500)
    rule = await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Sales", "activity_type": "sale",
        "award": {"type": "per_unit", "attribute": "amount", "unit": 100, "points_per_unit": 1}})
    assert rule.status_code == 201, rule.text
    wired = await client.post(f"/v1/programs/{program.id}/fundings/offline", headers={
        **OPERATOR, "Idempotency-Key": random_ref()}, json={"amount": {"amount": 50_000, "currency": "USD"},
                                                            "reference": "Wire #4471"})
    assert wired.status_code == 201, wired.text
    person, me = await shopper(client, program, 5_000)
    assert (await redeem(client, me, item["id"])).status_code in (200, 201, 202)
    await leaderboard(client, program, name="Top sellers")
    await new_sweepstakes(client, program, name="Q4 draw")
    await launched_wheel(client, program, cost_points=0)
    claims = []
    for _ in range(2):
        filed = await client.post("/v1/me/claims", headers={**me, "Idempotency-Key": random_ref()}, json={
            "invoice_number": random_ref("INV"), "invoice_date": "2026-06-01",
            "amount": {"amount": 10_000, "currency": "USD"}, "product": "ThermoPro 200"})
        assert filed.status_code == 201, filed.text
        claims.append(filed.json())
    _, session = await person_in(client, program, "owner")
    for slug, shows in (("overview", "Liability"), ("participants", person["display_name"]),
                        (f"participants/{person['id']}", "Grant points"), ("earning-rules", "Sales"),
                        ("claims", claims[0]["invoice_number"]), ("catalog", item["name"]),
                        ("orders", item["name"]), ("spin-campaigns", "active"), ("sweepstakes", "Q4 draw"),
                        ("leaderboards", "Top sellers"), ("funding", "Wire #4471"), ("partners", "partner-"),
                        ("users", "owner"), ("approvals", "Four eyes is off"), ("audit-log", "Filter the audit log"),
                        ("announcements", "Send an announcement")):
        page = await get(client, f"/console/p/{program.id}/{slug}", session)
        assert page.status_code == 200, (slug, page.text)
        assert html.escape(shows) in page.text, slug
    export = await get(client, f"/console/p/{program.id}/orders.csv", session)
    assert item["name"] in export.text
    queue = await get(client, f"/console/p/{program.id}/claims", session)
    csrf = csrf_of(queue.text)
    approve = await post(client, f"/console/p/{program.id}/claims/{claims[0]['id']}/decide", session,
                         {"csrf": csrf, "verdict": "approved", "reason": ""})
    assert approve.status_code == 303, approve.text
    no_reason = await post(client, f"/console/p/{program.id}/claims/{claims[1]['id']}/decide", session,
                           {"csrf": csrf, "verdict": "rejected", "reason": ""})
    assert no_reason.status_code == 422
    reject = await post(client, f"/console/p/{program.id}/claims/{claims[1]['id']}/decide", session,
                        {"csrf": csrf, "verdict": "rejected", "reason": "Invoice unreadable"})
    assert reject.status_code == 303
    statuses = {c["id"]: (await client.get(f"/v1/claims/{c['id']}", headers=program.headers)).json()["status"]
                for c in claims}
    assert statuses == {claims[0]["id"]: "approved", claims[1]["id"]: "rejected"}
    again = await post(client, f"/console/p/{program.id}/claims/{claims[0]['id']}/decide", session,
                       {"csrf": csrf, "verdict": "rejected", "reason": "changed my mind"})
    assert again.status_code == 409 and 'role="alert"' in again.text


async def test_a_session_lives_in_redis_with_an_idle_expiry(client: Any, redis: Any) -> None:
    from programs import keys
    from programs.credentials import hash_secret

    program = await new_program(client)
    _, session = await person_in(client, program, "viewer")
    value = session["Cookie"].split("=", 1)[1]
    key = keys.console_session(hash_secret(value))
    assert value not in key, "the cookie's value is not a key name"
    assert 0 < await redis.ttl(key) <= console_sessions.IDLE_SECONDS
    stored = await redis.hgetall(key)
    assert value.encode() not in b"".join(stored.values())


async def test_a_session_past_its_absolute_lifetime_is_gone(client: Any, redis: Any) -> None:
    import time

    from programs import keys
    from programs.credentials import hash_secret

    program = await new_program(client)
    _, session = await person_in(client, program, "viewer")
    key = keys.console_session(hash_secret(session["Cookie"].split("=", 1)[1]))
    assert (await get(client, f"/console/p/{program.id}/overview", session)).status_code == 200
    # Started longer ago than a session may live, though used a moment ago.
    await redis.hset(key, "started", repr(time.time() - console_sessions.ABSOLUTE_SECONDS - 1))
    answer = await get(client, f"/console/p/{program.id}/overview", session)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    assert not await redis.exists(key)


def test_the_session_cookie_is_secure_behind_https(settings: Any) -> None:
    import msgspec

    from console.manager.web import session_cookie

    assert session_cookie(msgspec.structs.replace(settings, public_url="https://rewards.example"), "v").secure
    assert not session_cookie(settings, "v").secure


async def test_a_manager_announces_to_a_segment_and_a_viewer_cannot(client: Any) -> None:
    program = await new_program(client)
    north = await new_participant(client, program, segment="north")
    south = await new_participant(client, program, segment="south")
    _, session = await person_in(client, program, "manager")
    form_page = await get(client, f"/console/p/{program.id}/announcements", session)
    sent = await post(client, f"/console/p/{program.id}/announcements", session, {
        "csrf": csrf_of(form_page.text), "title": "Double points week", "body": "ThermoPro sales earn double.",
        "segments": "north", "team_id": "", "email": "on"})
    assert sent.status_code == 303, sent.text
    listed = await get(client, f"/console/p/{program.id}/announcements?done=announced", session)
    assert "Announcement sent." in listed.text and "Double points week" in listed.text
    [announcement] = (await client.get("/v1/announcements", headers=program.headers)).json()["items"]
    assert announcement["recipients"] == 1 and announcement["sent_by"].startswith("user:")
    assert north["id"] != south["id"]

    _, viewer = await person_in(client, program, "viewer")
    seen = await get(client, f"/console/p/{program.id}/announcements", viewer)
    assert "Send announcement" not in seen.text and "Double points week" in seen.text
    refused = await post(client, f"/console/p/{program.id}/announcements", viewer, {
        "csrf": csrf_of(seen.text), "title": "x", "body": "y", "segments": "", "team_id": ""})
    assert refused.status_code == 403
    assert len((await client.get("/v1/announcements", headers=program.headers)).json()["items"]) == 1


async def test_the_claim_queue_shows_the_receipt_photo(client: Any) -> None:
    import io

    from PIL import Image

    from tests.factories import bearer, random_ref, tokens_for

    program = await new_program(client)
    person = await new_participant(client, program)
    me = bearer((await tokens_for(client, program, person["id"]))["access_token"])
    claim = (await client.post("/v1/me/claims", headers={**me, "Idempotency-Key": random_ref()}, json={
        "invoice_number": "INV-77", "invoice_date": "2026-11-20", "amount": {"amount": 100, "currency": "USD"},
        "product": "ThermoPro"})).json()
    photo = io.BytesIO()
    Image.new("RGB", (40, 60), (200, 200, 200)).save(photo, format="PNG")
    assert (await client.put(f"/v1/me/claims/{claim['id']}/receipt", content=photo.getvalue(),
                             headers={**me, "Content-Type": "image/png"})).status_code == 200
    _, session = await person_in(client, program, "viewer")
    queue = await get(client, f"/console/p/{program.id}/claims", session)
    assert "Receipt for INV-77" in queue.text
    image = await get(client, f"/console/p/{program.id}/claims/{claim['id']}/receipt", session)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (40, 60)
    other = await new_program(client)
    _, stranger = await person_in(client, other, "owner")
    assert (await get(client, f"/console/p/{program.id}/claims/{claim['id']}/receipt", stranger)).status_code in (403, 404)


async def test_a_grant_over_the_threshold_waits_for_a_second_person(client: Any) -> None:
    program = await new_program(client, approval_threshold_points=100)
    person = await new_participant(client, program)
    _, first = await person_in(client, program, "manager")
    _, second = await person_in(client, program, "owner")
    page_ = await get(client, f"/console/p/{program.id}/participants/{person['id']}", first)
    asked = await post(client, f"/console/p/{program.id}/participants/{person['id']}/grant", first,
                       {"csrf": csrf_of(page_.text), "points": "500", "reason": "dealer of the month", "key": "k1"})
    assert asked.status_code == 303 and "done=requested" in asked.headers["location"]
    assert await available(client, program, person["id"]) == 0
    mine = await get(client, f"/console/p/{program.id}/approvals", first)
    assert "yours: another person decides" in mine.text and ">Approve</button>" not in mine.text
    [request] = (await client.get("/v1/approvals", headers=program.headers)).json()["items"]
    forged = await post(client, f"/console/p/{program.id}/approvals/{request['id']}/decide", first,
                        {"csrf": csrf_of(mine.text), "verdict": "approved"})
    assert forged.status_code == 403
    assert await available(client, program, person["id"]) == 0

    theirs = await get(client, f"/console/p/{program.id}/approvals", second)
    assert ">Approve</button>" in theirs.text and "dealer of the month" in theirs.text
    approved = await post(client, f"/console/p/{program.id}/approvals/{request['id']}/decide", second,
                          {"csrf": csrf_of(theirs.text), "verdict": "approved"})
    assert approved.status_code == 303
    assert await available(client, program, person["id"]) == 500
    decided = await get(client, f"/console/p/{program.id}/approvals", second)
    assert "Nothing waits for a decision." in decided.text and "approved" in decided.text


async def test_the_audit_log_names_the_person_filters_and_exports(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    _, session = await person_in(client, program, "manager")
    page_ = await get(client, f"/console/p/{program.id}/participants/{person['id']}", session)
    granted = await post(client, f"/console/p/{program.id}/participants/{person['id']}/grant", session,
                         {"csrf": csrf_of(page_.text), "points": "40", "reason": "trade show", "key": "g1"})
    assert granted.status_code == 303
    deactivated = await post(client, f"/console/p/{program.id}/participants/{person['id']}/deactivate", session,
                             {"csrf": csrf_of(page_.text)})
    assert deactivated.status_code == 303

    async def logged() -> int:
        found = (await client.get("/v1/audit-events", headers=program.headers)).json()["items"]
        return len([e for e in found if e["actor"].startswith("user:")])  # the key's own changes are there too

    assert await wait_until(logged, 2) == 2
    shown = await get(client, f"/console/p/{program.id}/audit-log", session)
    assert "points.grant" in shown.text and "participant.deactivated" in shown.text and "trade show" in shown.text
    only = await get(client, f"/console/p/{program.id}/audit-log?kind=points.grant", session)
    assert "points.grant" in only.text and "participant.deactivated" not in only.text
    none = await get(client, f"/console/p/{program.id}/audit-log?since=2099-01-01", session)
    assert "Nothing in the log for this filter." in none.text
    exported = await get(client, f"/console/p/{program.id}/audit-log.csv?kind=points.grant", session)
    assert exported.text.count("points.grant") == 1 and "user:" in exported.text


async def ask_reset(client: Any, email: str) -> Any:
    form = await client.get(follow_redirects=False, url="/console/forgot-password")
    pre = re.match(r"rw_console_pre=([^;]+)", form.headers["set-cookie"])
    assert pre, form.headers
    client.cookies.clear()
    response = await client.post(follow_redirects=False, url="/console/forgot-password",
                                 data={"email": email, "csrf": csrf_of(form.text)},
                                 headers={"Cookie": f"rw_console_pre={pre.group(1)}"})
    client.cookies.clear()
    return response


async def resets_to(settings: Any, email: str, count: int) -> list[Any]:
    """The outbox's reset messages to one address, once `count` of them have arrived (the
    reset mail leaves in the background)."""
    outbox = Path(settings.outbox_path)

    def addressed(message: Any) -> bool:
        try:
            return message["To"] == email and "Reset" in message["Subject"]
        except (IndexError, ValueError):  # another test's odd address (the schema fuzz mails the outbox too)
            return False

    def mine() -> list[Any]:
        found = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in outbox.glob("*.eml")]
        return [m for m in found if addressed(m)]

    async def arrived() -> bool:
        return outbox.exists() and len(mine()) >= count

    await wait_until(arrived, True, timeout=10)
    return mine()


async def test_a_forgotten_password_is_reset_by_an_emailed_link_that_ends_every_session(client: Any,
                                                                                          settings: Any) -> None:
    program = await new_program(client)
    email, old_session = await person_in(client, program, "manager")
    asked = await ask_reset(client, email.upper())
    assert asked.status_code == 200 and "is on its way" in asked.text
    unknown = await ask_reset(client, new_email())
    assert unknown.status_code == 200 and "is on its way" in unknown.text, "the same answer for an unknown email"
    (mail,) = await resets_to(settings, email, 1)
    link = re.search(r"(\S+/console/reset/\S+)", mail.get_content())
    assert link and link.group(1).startswith(settings.public_base + "/console/reset/")
    path = "/" + link.group(1).split("://", 1)[1].split("/", 1)[1]
    # A link preview opens it and spends nothing.
    assert "New password" in (await client.get(follow_redirects=False, url=path)).text
    new_password = "a brand new passphrase"
    differ = await client.post(follow_redirects=False, url=path, data={"password": new_password, "confirm": "x"})
    assert differ.status_code == 422 and "differ" in differ.text
    done = await client.post(follow_redirects=False, url=path, data={"password": new_password,
                                                                   "confirm": new_password})
    assert done.status_code == 303 and done.headers["location"] == "/console/sign-in"
    assert (await get(client, f"/console/p/{program.id}/overview", old_session)).status_code == 303, \
        "a session opened with the old password ends"
    assert (await attempt(client, email, PASSWORD)).status_code == 200, "the old password no longer signs in"
    await sign_in(client, email, new_password)
    again = await client.post(follow_redirects=False, url=path, data={"password": "yet another passphrase",
                                                                    "confirm": "yet another passphrase"})
    assert again.status_code == 404, "a reset link works once"


async def test_reset_links_are_limited_per_email_and_need_the_forms_token(client: Any, settings: Any) -> None:
    program = await new_program(client)
    email, _ = await person_in(client, program, "viewer")
    for _ in range(5):
        assert (await ask_reset(client, email)).status_code == 200
    await resets_to(settings, email, 3)
    forged = await client.post(follow_redirects=False, url="/console/forgot-password", data={"email": email,
                                                                                          "csrf": "forged"})
    client.cookies.clear()
    assert forged.status_code == 200 and "expired" in forged.text
    await asyncio.sleep(0.2)  # what the background would have sent by now
    assert len(await resets_to(settings, email, 3)) == 3, "three reset mails per email in 15 minutes, no more"


async def test_a_manager_makes_an_app_sign_in_link_that_signs_the_participant_in(client: Any,
                                                                                 settings: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    _, session = await person_in(client, program, "manager")
    page = await get(client, f"/console/p/{program.id}/participants/{person['id']}", session)
    made = await post(client, f"/console/p/{program.id}/participants/{person['id']}/sign-in-link", session,
                      {"csrf": csrf_of(page.text)})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    url = html.unescape(re.search(r'id="link" type="text" readonly value="([^"]+)"', made.text).group(1))  # type: ignore[union-attr]
    assert url.startswith(f"{settings.public_base}/app/{program.id}/sign-in#")
    spent = await client.post("/v1/auth/sign-in-link", json={"token": url.split("#", 1)[1]})
    client.cookies.clear()
    assert spent.status_code == 200 and spent.json()["access_token"]
    _, viewer = await person_in(client, program, "viewer")
    refused = await post(client, f"/console/p/{program.id}/participants/{person['id']}/sign-in-link", viewer,
                         {"csrf": csrf_of((await get(client, f"/console/p/{program.id}/overview", viewer)).text)})
    assert refused.status_code == 403 and "sign-in#" not in refused.text
