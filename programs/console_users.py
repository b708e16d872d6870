"""Console users: people (one per email across the installation) with a role in one or more
programs, invited by a one-use link to set their password, and signed in by email and
password.

Passwords are argon2 hashes; invite tokens are random and only their SHA-256 is kept. An
unknown email and a wrong password answer the same refusal after the same work (an argon2
verify against a fixed hash), so sign-in tells a guesser nothing about who has an account.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from msgspec import Meta

from kernel.errors import Conflict, DomainError, Invalid, NotFound
from kernel.ids import new_id
from kernel.mail import Mail, Mailer, send, send_later
from programs.credentials import hash_secret
from programs.programs import get_program
from programs.tables import ConsoleInvite, ConsoleMembership, ConsoleUser

Role = Literal["owner", "manager", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "manager", "viewer")
INVITE_TTL = timedelta(hours=72)
# A reset link is an invite with a short life: it is for the person asking now.
RESET_TTL = timedelta(hours=1)
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both refusals cost one argon2 verify. A
# hash of a random password nobody kept, with the hasher's parameters (a test holds them
# equal): hashing one at import cost every process that imports this module 0.15 s.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$AvbmGhf9fmclVIh04sQS+A$6DjTb/3y0RmID8I/zYOCNnd1vle5x5ClNbnpMizLYYA"

Email = Annotated[str, Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class Forbidden(DomainError):
    """A console user's role does not allow the change."""

    code = "forbidden"


class NewConsoleUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    display_name: Annotated[str, Meta(min_length=1, max_length=200)]
    role: Role


class ConsoleUserCreated(msgspec.Struct, frozen=True):
    id: str
    email: str
    role: Role
    # Null when the person already has a password: they sign in as they are.
    invite_url: str | None


class Membership(msgspec.Struct, frozen=True):
    program_id: str
    program_name: str
    role: Role


class Person(msgspec.Struct, frozen=True):
    id: str
    email: str
    display_name: str
    has_password: bool


class Member(msgspec.Struct, frozen=True):
    """A person as one program's users list shows them."""

    id: str
    email: str
    display_name: str
    role: Role
    has_password: bool


def normal_email(email: str) -> str:
    return email.strip().lower()


def _person(row: dict) -> Person:
    return Person(id=row["id"], email=row["email"], display_name=row["display_name"],
                  has_password=row["password_hash"] is not None)


async def find_person(email: str) -> Person | None:
    row = await ConsoleUser.select().where(ConsoleUser.email == normal_email(email)).first()
    return _person(row) if row else None


async def get_person(user_id: str) -> Person:
    row = await ConsoleUser.select().where(ConsoleUser.id == user_id).first()
    if row is None:
        raise NotFound("no such console user")
    return _person(row)


async def _ensure_person(email: str, display_name: str) -> Person:
    found = await find_person(email)
    if found is not None:
        return found
    now = datetime.now(timezone.utc)
    # A concurrent insert of the same email: the unique column keeps the first row.
    await ConsoleUser.insert(ConsoleUser(id=new_id("cu"), email=normal_email(email), display_name=display_name,
                                         password_hash=None, created_at=now)).on_conflict(action="DO NOTHING")
    found = await find_person(email)
    assert found is not None
    return found


async def _set_role(user_id: str, program_id: str, role: Role) -> None:
    key = f"{user_id}:{program_id}"
    existing = await ConsoleMembership.select(ConsoleMembership.id).where(ConsoleMembership.user_program == key).first()
    if existing:
        await ConsoleMembership.update({ConsoleMembership.role: role}).where(ConsoleMembership.user_program == key)
        return
    await ConsoleMembership.insert(ConsoleMembership(
        id=new_id("cm"), user_id=user_id, program_id=program_id, role=role, user_program=key,
        created_at=datetime.now(timezone.utc))).on_conflict(action="DO NOTHING")


async def new_invite(user_id: str, now: datetime | None = None, ttl: timedelta = INVITE_TTL) -> str:
    """A fresh invite (or reset) token for the person (only its hash is stored)."""
    now = now or datetime.now(timezone.utc)
    token = secrets.token_urlsafe(32)
    await ConsoleInvite.insert(ConsoleInvite(id=new_id("ci"), user_id=user_id, token_hash=hash_secret(token),
                                             expires_at=now + ttl, used_at=None, created_at=now))
    return token


def reset_url(public_base: str, token: str) -> str:
    return f"{public_base}/console/reset/{token}"


async def request_password_reset(email: str, public_base: str, mailer: Mailer) -> None:
    """Mails a one-use link (one hour) that sets a new password, when the email is a console
    user's. Nothing is said either way, and the mail leaves in the background, so neither the
    answer nor its timing tells whether the email has an account."""
    person = await find_person(email) if email else None
    if person is None:
        return
    url = reset_url(public_base, await new_invite(person.id, ttl=RESET_TTL))
    send_later(mailer, Mail(
        to=person.email, subject="Reset your console password",
        text=(f"Hello {person.display_name},\n\nSomeone (we hope you) asked to reset the password of your "
              f"console account. Choose a new one here (the link works once, for one hour):\n\n{url}\n\n"
              "If you did not ask, ignore this message: your password stays as it is.\n")), "a password reset")


def invite_url(public_base: str, token: str) -> str:
    return f"{public_base}/console/invite/{token}"


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"a password needs at least {MIN_PASSWORD} characters", field="password")
    if len(password) > 1024:
        raise Invalid("a password has at most 1024 characters", field="password")


async def add_console_user(program_id: str, spec: NewConsoleUser, public_base: str,
                           mailer: Mailer | None = None) -> ConsoleUserCreated:
    """Adds the person (new, or found by email) to the program with the role. A person with
    no password yet gets an invite link (emailed when a mailer is given)."""
    program = await get_program(program_id)
    person = await _ensure_person(spec.email, spec.display_name)
    await _set_role(person.id, program_id, spec.role)
    url = None
    if not person.has_password:
        url = invite_url(public_base, await new_invite(person.id))
        if mailer is not None:
            await send(mailer, Mail(
                to=person.email, subject=f"You are invited to the {program.name} console",
                text=(f"Hello {person.display_name},\n\nYou have been given the {spec.role} role in "
                      f"{program.name}. Set your password here (the link works once, for 72 hours):\n\n"
                      f"{url}\n")))
    return ConsoleUserCreated(id=person.id, email=person.email, role=spec.role, invite_url=url)


async def create_with_password(program_id: str, email: str, role: Role, password: str,
                               display_name: str | None = None) -> ConsoleUserCreated:
    """The offline path (CLI, demo): the person gets the role and this password at once."""
    check_password(password)
    await get_program(program_id)
    person = await _ensure_person(email, display_name or normal_email(email).split("@")[0])
    await _set_role(person.id, program_id, role)
    await ConsoleUser.update({ConsoleUser.password_hash: _hasher.hash(password)}).where(ConsoleUser.id == person.id)
    return ConsoleUserCreated(id=person.id, email=person.email, role=role, invite_url=None)


async def _live_invite(token: str, now: datetime) -> dict | None:
    row = await ConsoleInvite.select().where(ConsoleInvite.token_hash == hash_secret(token)).first()
    if row is None or row["used_at"] is not None or row["expires_at"] <= now:
        return None
    return row


async def invite_person(token: str) -> Person | None:
    """Whose invite this is, while it can still be used (a GET of the link spends nothing)."""
    row = await _live_invite(token, datetime.now(timezone.utc))
    return await get_person(row["user_id"]) if row else None


async def accept_invite(token: str, password: str) -> Person:
    """Spends the invite and sets the person's password."""
    check_password(password)
    now = datetime.now(timezone.utc)
    row = await _live_invite(token, now)
    if row is None:
        raise Invalid("this invite link is used, expired or unknown: ask for a new one", field="token")
    # Spent by the first request only: the update names the unused row.
    spent = await ConsoleInvite.update({ConsoleInvite.used_at: now}).where(
        (ConsoleInvite.id == row["id"]) & ConsoleInvite.used_at.is_null()).returning(ConsoleInvite.id)
    if not spent:
        raise Invalid("this invite link is used, expired or unknown: ask for a new one", field="token")
    await ConsoleUser.update({ConsoleUser.password_hash: _hasher.hash(password)}).where(
        ConsoleUser.id == row["user_id"])
    # Any other link still out for this person (an older reset, an invite) dies with this one.
    await ConsoleInvite.update({ConsoleInvite.used_at: now}).where(
        (ConsoleInvite.user_id == row["user_id"]) & ConsoleInvite.used_at.is_null())
    return await get_person(row["user_id"])


async def authenticate(email: str, password: str) -> Person | None:
    """The person when the password is theirs; None otherwise, after the same work."""
    row = await ConsoleUser.select().where(ConsoleUser.email == normal_email(email)).first() if email else None
    stored = row["password_hash"] if row else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or stored is None:
        return None
    return _person(row)


async def memberships(user_id: str) -> list[Membership]:
    from programs.tables import Program

    rows = await ConsoleMembership.select().where(ConsoleMembership.user_id == user_id).order_by(
        ConsoleMembership.created_at)
    names = {}
    if rows:
        programs = await Program.select(Program.id, Program.name).where(
            Program.id.is_in([r["program_id"] for r in rows]))
        names = {p["id"]: p["name"] for p in programs}
    return [Membership(program_id=r["program_id"], program_name=names.get(r["program_id"], r["program_id"]),
                       role=r["role"]) for r in rows if r["program_id"] in names]


async def role_in(user_id: str, program_id: str) -> Role | None:
    row = await ConsoleMembership.select(ConsoleMembership.role).where(
        ConsoleMembership.user_program == f"{user_id}:{program_id}").first()
    return row["role"] if row else None


async def program_members(program_id: str) -> list[Member]:
    rows = await ConsoleMembership.select().where(ConsoleMembership.program_id == program_id).order_by(
        ConsoleMembership.created_at)
    if not rows:
        return []
    people = {p["id"]: p for p in await ConsoleUser.select().where(
        ConsoleUser.id.is_in([r["user_id"] for r in rows]))}
    return [Member(id=r["user_id"], email=people[r["user_id"]]["email"],
                   display_name=people[r["user_id"]]["display_name"], role=r["role"],
                   has_password=people[r["user_id"]]["password_hash"] is not None)
            for r in rows if r["user_id"] in people]


async def _owners(program_id: str) -> int:
    return await ConsoleMembership.count().where(
        (ConsoleMembership.program_id == program_id) & (ConsoleMembership.role == "owner"))


async def change_role(program_id: str, user_id: str, role: Role) -> None:
    current = await role_in(user_id, program_id)
    if current is None:
        raise NotFound("that person has no role in this program")
    if current == "owner" and role != "owner" and await _owners(program_id) <= 1:
        raise Conflict("a program keeps at least one owner")
    await _set_role(user_id, program_id, role)


async def remove_member(program_id: str, user_id: str) -> None:
    current = await role_in(user_id, program_id)
    if current is None:
        raise NotFound("that person has no role in this program")
    if current == "owner" and await _owners(program_id) <= 1:
        raise Conflict("a program keeps at least one owner")
    await ConsoleMembership.delete().where(ConsoleMembership.user_program == f"{user_id}:{program_id}")


# What each role may change; every page may be seen by all three.
MANAGES = frozenset({"owner", "manager"})
OWNS = frozenset({"owner"})


def require(role: Role | None, allowed: frozenset[str]) -> None:
    """Refuses a change the role does not allow (the console answers 403)."""
    if role not in allowed:
        raise Forbidden("your role in this program does not allow this change")
