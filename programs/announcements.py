"""Announcements: a program manager's message to a segment, a team or everyone.

Each participant in the audience gets a line in the app's feed at once, and each who has an
email address an email through the installation's mailer (kernel/mail.py: SMTP, or the
outbox folder). The emails are queued as rows (`AnnouncementMail`) and sent by the worker
(`send_due`), so a manager's request never waits on a mail server and a crash loses none:
a row is leased before it is sent and marked after, and a failed send is retried with
backoff. Gift-card codes and sign-in secrets never travel this way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from piccolo.columns.combination import WhereRaw
from piccolo.query.methods.select import Select

from kernel.clock import utc
from kernel.ids import new_id
from kernel.mail import Mail, Mailer, send
from kernel.pages import decode_cursor, next_cursor
from kernel.sqlite_pool import placeholders
from programs.feed import FeedEntry, publish
from programs.programs import ProgramView, get_program
from programs.rules import Audience
from programs.tables import Announcement, AnnouncementMail, Participant

# A lease on a row being sent: another worker leaves it alone for this long.
SEND_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 10  # the partial index announcement_mails_due holds `attempts < 10`: change both
_INSERT_CHUNK = 500


class NewAnnouncement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Annotated[str, Meta(min_length=1, max_length=120)]
    body: Annotated[str, Meta(min_length=1, max_length=2000)]
    audience: Audience = Audience()
    email: bool = True  # also email those who have an address


class AnnouncementView(msgspec.Struct, frozen=True):
    id: str
    title: str
    body: str
    audience: Audience
    recipients: int
    emails: int
    emails_sent: int
    sent_by: str
    created_at: datetime


class AnnouncementPage(msgspec.Struct, frozen=True):
    items: list[AnnouncementView]
    next_cursor: str | None


def _view(row: dict[str, Any], sent: int) -> AnnouncementView:
    return AnnouncementView(
        id=row["id"], title=row["title"], body=row["body"],
        audience=msgspec.json.decode(row["audience"], type=Audience), recipients=row["recipients"],
        emails=row["emails"], emails_sent=sent, sent_by=row["sent_by"], created_at=utc(row["created_at"]))


async def announce(program: ProgramView, spec: NewAnnouncement, sent_by: str) -> AnnouncementView:
    """Writes the feed lines and queues the emails; answers what was sent to how many."""
    people = await Participant.select(Participant.id, Participant.email, Participant.segment, Participant.team_id) \
        .where((Participant.program_id == program.id) & (Participant.status == "active")).run()
    audience = [p for p in people if spec.audience.refusal(p["segment"], p["team_id"]) is None]
    announcement_id = new_id("ann")
    now = datetime.now(timezone.utc)
    mails = [AnnouncementMail(id=f"{announcement_id}:{p['id']}", announcement_id=announcement_id,
                              program_id=program.id, email=p["email"], next_attempt_at=now)
             for p in audience if spec.email and p["email"]]
    await Announcement.insert(Announcement(
        id=announcement_id, program_id=program.id, title=spec.title, body=spec.body,
        audience=msgspec.json.encode(spec.audience).decode(), recipients=len(audience), emails=len(mails),
        sent_by=sent_by, created_at=now)).run()
    await publish(program.id, [FeedEntry(key=f"announcement:{announcement_id}:{p['id']}", participant_id=p["id"],
                                         kind="announcement", text=f"{spec.title}: {spec.body}",
                                         reference=announcement_id) for p in audience])
    for start in range(0, len(mails), _INSERT_CHUNK):
        await AnnouncementMail.insert(*mails[start:start + _INSERT_CHUNK]).on_conflict(action="DO NOTHING").run()
    row = await Announcement.select().where(Announcement.id == announcement_id).first().run()
    return _view(row, 0)


async def list_announcements(program_id: str, limit: int = 50, cursor: str | None = None) -> AnnouncementPage:
    """Newest first, each with how many of its emails have gone out."""
    where = Announcement.program_id == program_id
    after = decode_cursor(cursor)
    if after is not None:
        where &= Announcement.id < after
    rows = await Announcement.select().where(where).order_by(Announcement.id, ascending=False).limit(limit + 1).run()
    shown = rows[:limit]
    sent = {r["announcement_id"]: r["sent"] for r in await AnnouncementMail.raw(
        "SELECT announcement_id, COUNT(*) AS sent FROM announcement_mails WHERE sent_at IS NOT NULL "
        f"AND announcement_id IN ({placeholders(len(shown))}) GROUP BY announcement_id",
        *[r["id"] for r in shown]).run()} if shown else {}
    return AnnouncementPage(items=[_view(r, sent.get(r["id"], 0)) for r in shown],
                            next_cursor=next_cursor([r["id"] for r in rows], limit))


def due_mails(now: datetime, limit: int) -> Select:
    """The unsent emails due by `now`, soonest first, through the partial index
    announcement_mails_due (not the ones that gave up, which keep sent_at null for good). The
    attempts' bound is written into the SQL, not bound, so that Postgres's generic plan of it
    can use that index too."""
    return AnnouncementMail.select().where(
        AnnouncementMail.sent_at.is_null() & (AnnouncementMail.next_attempt_at <= now)
        & WhereRaw(f"attempts < {MAX_ATTEMPTS:d}")).order_by(AnnouncementMail.next_attempt_at).limit(limit)


async def send_due(mailer: Mailer, public_base: str, limit: int = 50) -> int:
    """Sends up to `limit` queued emails that are due; answers how many went out."""
    now = datetime.now(timezone.utc)
    due = await due_mails(now, limit).run()
    sent = 0
    messages: dict[str, tuple[str, str]] = {}
    for row in due:
        leased = await AnnouncementMail.update({AnnouncementMail.next_attempt_at: now + SEND_LEASE}).where(
            (AnnouncementMail.id == row["id"]) & AnnouncementMail.sent_at.is_null()
            & (AnnouncementMail.next_attempt_at <= now)).returning(AnnouncementMail.id).run()
        if not leased:
            continue  # another worker has it
        if row["announcement_id"] not in messages:
            messages[row["announcement_id"]] = await _message(row["announcement_id"], row["program_id"], public_base)
        subject, text = messages[row["announcement_id"]]
        try:
            await send(mailer, Mail(to=row["email"], subject=subject, text=text))
        except Exception as exc:  # a mail server's refusal or a network error: retried later
            attempts = row["attempts"] + 1
            await AnnouncementMail.update({
                AnnouncementMail.attempts: attempts,
                AnnouncementMail.next_attempt_at: now + timedelta(seconds=min(3600, 2 ** attempts)),
                AnnouncementMail.last_error: f"{type(exc).__name__}: {exc}"[:300],
            }).where(AnnouncementMail.id == row["id"]).run()
            continue
        await AnnouncementMail.update({AnnouncementMail.sent_at: datetime.now(timezone.utc),
                                       AnnouncementMail.attempts: row["attempts"] + 1}).where(
            AnnouncementMail.id == row["id"]).run()
        sent += 1
    return sent


async def _message(announcement_id: str, program_id: str, public_base: str) -> tuple[str, str]:
    row = await Announcement.select(Announcement.title, Announcement.body).where(
        Announcement.id == announcement_id).first().run()
    program = await get_program(program_id)
    text = f"{row['body']}\n\nOpen {program.name}: {public_base}/app/{program_id}\n"
    return f"{program.name}: {row['title']}", text
