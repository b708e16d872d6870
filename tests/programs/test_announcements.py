"""A manager's announcement reaches exactly its audience: a feed line each, and an email to
each who has an address, sent from the queue with a link to the app."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from kernel.mail import mailer
from programs.announcements import send_due
from tests.factories import bearer, new_participant, new_program, random_ref, tokens_for, wait_until

pytestmark = pytest.mark.sql


def outbox_messages(folder: Path, addresses: set[str]) -> list[email.message.Message]:
    found = [email.message_from_bytes(path.read_bytes()) for path in folder.glob("*.eml")] if folder.exists() else []
    return [m for m in found if m["To"] in addresses]


async def test_an_announcement_reaches_its_segment_in_the_feed_and_by_email(client, settings) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, name="Dealer Stars")
    domain = f"{random_ref('d')}.example"
    north = [await new_participant(client, program, segment="north", email=f"n{i}@{domain}") for i in range(2)]
    north_without_email = await new_participant(client, program, segment="north")
    south = await new_participant(client, program, segment="south", email=f"s@{domain}")
    gone = await new_participant(client, program, segment="north", email=f"gone@{domain}")
    assert (await client.post(f"/v1/participants/{gone['id']}/deactivate", headers=program.headers)).status_code == 200

    made = await client.post("/v1/announcements", headers=program.headers, json={
        "title": "Double points week", "body": "Every ThermoPro sale earns double until Friday.",
        "audience": {"segments": ["north"]}})
    assert made.status_code == 201, made.text
    announcement = made.json()
    assert (announcement["recipients"], announcement["emails"]) == (3, 2)

    async def feed_has_it(person: dict) -> bool:  # type: ignore[type-arg]
        me = bearer((await tokens_for(client, program, person["id"]))["access_token"])
        lines = (await client.get("/v1/me/feed", headers=me)).json()["items"]
        return any(line["kind"] == "announcement" and "Double points week" in line["text"] for line in lines)

    assert [await feed_has_it(p) for p in [*north, north_without_email]] == [True, True, True]
    assert await feed_has_it(south) is False

    # The worker sends the queue (here the test sends it, or a live server's worker task does).
    outbox = settings.outbox_path
    await send_due(mailer(None, settings.mail_from, outbox), settings.public_base)
    wanted = {p["email"] for p in north}
    messages = await wait_until(lambda: _count(outbox, wanted | {south["email"], gone["email"]}), 2)
    assert messages == 2
    [first, _] = outbox_messages(outbox, wanted)
    assert first["Subject"] == "Dealer Stars: Double points week"
    assert f"/app/{program.id}" in first.get_payload() and "ThermoPro" in first.get_payload()

    async def sent() -> int:
        page = (await client.get("/v1/announcements", headers=program.headers)).json()
        return page["items"][0]["emails_sent"]

    assert await wait_until(sent, 2) == 2


async def _count(folder: Path, addresses: set[str]) -> int:
    return len(outbox_messages(folder, addresses))


async def test_a_bad_announcement_is_refused_and_nothing_is_sent(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await new_participant(client, program, email=f"x@{random_ref('d')}.example")
    for body in [{"title": "", "body": "x"}, {"title": "x" * 121, "body": "x"}, {"title": "t"},
                 {"title": "t", "body": "b", "audience": {"segments": "north"}}]:
        refused = await client.post("/v1/announcements", headers=program.headers, json=body)
        assert refused.status_code in (400, 422), refused.text
    assert (await client.get("/v1/announcements", headers=program.headers)).json()["items"] == []


async def test_the_send_pass_reads_the_unsent_mails_that_are_due_only(migrated) -> None:  # type: ignore[no-untyped-def]
    """Mails that gave up keep sent_at null for good: the pass (every second) must not read them."""
    from datetime import datetime, timezone

    from programs.announcements import due_mails
    from programs.tables import AnnouncementMail
    from tests.query_plans import plan_of, sqlite_only

    sqlite_only(AnnouncementMail)
    assert await plan_of(due_mails(datetime.now(timezone.utc), 50)) == [
        "SEARCH announcement_mails USING INDEX announcement_mails_due (next_attempt_at<?)"]


async def test_a_page_of_my_feed_is_read_in_its_order(migrated) -> None:  # type: ignore[no-untyped-def]
    """Newest first, straight from an index, not sorted from every line the participant has."""
    from programs.feed import page_query
    from programs.tables import FeedItem
    from tests.query_plans import plan_of, sqlite_only

    sqlite_only(FeedItem)
    for after in (None, "feed_any"):
        steps = await plan_of(page_query("prg_any", "par_any", 51, after))
        assert steps[0].startswith("SEARCH feed_items USING INDEX feed_items_by_participant (participant_id=?"), steps
        assert not any("TEMP B-TREE" in step for step in steps), steps
