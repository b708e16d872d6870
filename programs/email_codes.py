"""Sign-in by email code, for a participant who has no sign-in link.

Asking for a code always gets the same answer, whether or not the address belongs to a
participant, and the mail leaves in the background so the answer's timing tells nothing
either. A code is 6 digits, works once, for 10 minutes and 5 tries; only its SHA-256
(salted with the program and the address) is kept, in Redis, expiring with the code. Asking
is counted per address asked for and per client address, known or not.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated

import msgspec
from msgspec import Meta

from programs import keys as program_keys
from programs.credentials import hash_secret
from programs.participants import email_holders
from programs.programs import ensure_active, get_program
from programs.sign_in_links import app_url
from programs.tables import Participant
from kernel.errors import NotFound, Refused, Unauthenticated
from kernel.ids import Id
from kernel.mail import Mail, Mailer, send_later
from kernel.replies import reply_text
from wallet.store import WalletStore

CODE_TTL_SECONDS = 600
MAX_TRIES = 5
# Codes asked for one address, and by one client address, per window.
SEND_WINDOW_SECONDS = 900
SENDS_PER_EMAIL = 5
SENDS_PER_CLIENT = 20
REFUSED = "the code is wrong, expired or already used: ask for a new one"

Email = Annotated[str, Meta(min_length=3, max_length=320, pattern=r"^[^@\s%]+@[^@\s%]+$")]
Code = Annotated[str, Meta(min_length=1, max_length=20)]

# Checks the tries left and counts this one, in one step (nothing is created for a key
# that expired). Answers nil once the code is gone or its tries are spent.
_TRY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries > tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return false end
local fields = redis.call('HMGET', KEYS[1], 'participant', 'code_hash')
return {tries, fields[1], fields[2]}
"""


class CodeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    program_id: Id
    email: Email


class CodeAttempt(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    program_id: Id
    email: Email
    code: Code


def normal_email(email: str) -> str:
    return email.strip().lower()


def _code_hash(program_id: str, email: str, code: str) -> str:
    return hash_secret(f"{program_id}:{email}:{code}")


async def _count(store: WalletStore, program_id: str, scope: str, subject: str, limit: int) -> None:
    window = int(time.time() // SEND_WINDOW_SECONDS)
    key = program_keys.email_code_sends(program_id, scope, hash_secret(subject), window)
    count = await store.client.incr(key)
    if count == 1:
        await store.client.expire(key, SEND_WINDOW_SECONDS)
    if count > limit:
        raise Refused("rate_limited", "too many sign-in codes asked for: wait a few minutes and try again")


async def participant_by_email(program_id: str, email: str) -> str | None:
    """The active participant of the program with this address. Emails are unique within a
    program; rows from before that rule that share one sign no one in."""
    holders = await email_holders(program_id, email)
    return holders[0][0] if len(holders) == 1 and holders[0][1] == "active" else None


async def request_code(store: WalletStore, mailer: Mailer, public_base: str, request: CodeRequest,
                       client_address: str) -> None:
    """Mails a new code if the address is an active participant's; answers the same either way."""
    email = normal_email(request.email)
    try:
        program = await get_program(request.program_id)
    except NotFound:
        return  # no such program: the same answer as for an unknown address
    await ensure_active(store, program.id)
    await _count(store, program.id, "ip", client_address, SENDS_PER_CLIENT)
    await _count(store, program.id, "to", email, SENDS_PER_EMAIL)
    participant_id = await participant_by_email(program.id, email)
    if participant_id is None:
        return
    code = f"{secrets.randbelow(1_000_000):06d}"
    key = program_keys.email_code(program.id, hash_secret(email))
    # A new code replaces the last one (and its tries).
    await store.client.delete(key)
    await store.client.hset(key, mapping={"participant": participant_id,
                                          "code_hash": _code_hash(program.id, email, code), "tries": 0})
    await store.client.expire(key, CODE_TTL_SECONDS)
    mail = Mail(to=email, subject=f"Your {program.name} sign-in code",
                text=f"Your sign-in code is {code}\n\nType it in the app at {app_url(public_base, program.id)} "
                     f"within 10 minutes. It works once.\n\nIf you did not ask for it, ignore this message.\n")
    send_later(mailer, mail, "a sign-in code")


async def verify_code(store: WalletStore, attempt: CodeAttempt) -> tuple[str, str]:
    """Spends a right code: answers (program id, participant id). Five wrong tries end it."""
    email = normal_email(attempt.email)
    await ensure_active(store, attempt.program_id)
    key = program_keys.email_code(attempt.program_id, hash_secret(email))
    found = await store.client.eval(_TRY, 1, key, MAX_TRIES)
    if not found:
        raise Unauthenticated(REFUSED)
    tries, participant_id, code_hash = int(found[0]), reply_text(found[1]), reply_text(found[2])
    if not hmac.compare_digest(_code_hash(attempt.program_id, email, attempt.code.strip()), code_hash):
        if tries >= MAX_TRIES:
            await store.client.delete(key)
        raise Unauthenticated(REFUSED)
    # Of two right tries at once, only the one that deletes the code signs in.
    if not await store.client.delete(key):
        raise Unauthenticated(REFUSED)
    row = await Participant.select(Participant.status).where(
        (Participant.id == participant_id) & (Participant.program_id == attempt.program_id)
    ).first().run()
    if row is None or row["status"] != "active":
        raise Unauthenticated(REFUSED)
    return attempt.program_id, participant_id

