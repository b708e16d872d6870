"""Sign-in links: a one-use, 15-minute link that signs a participant into the phone app.

The link carries its token in the URL's fragment, which browsers never send to a server, so
a link preview that fetches the page spends nothing; the page's script spends the token.
Only SHA-256 of the token is kept (in Redis, expiring with the link); spending it is a
GETDEL, so of two taps exactly one signs in.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import msgspec

from programs import keys as program_keys
from programs.credentials import hash_secret
from programs.programs import ensure_active
from programs.tables import Participant
from kernel.errors import NotFound, Unauthenticated
from kernel.replies import reply_text
from wallet.store import WalletStore

LINK_PREFIX = "rwl."
LINK_TTL = timedelta(minutes=15)
REFUSED = "the sign-in link is invalid, expired or already used: ask for a new one"


class SignInLink(msgspec.Struct, frozen=True):
    url: str
    expires_at: datetime


def app_url(public_base: str, program_id: str) -> str:
    return f"{public_base}/app/{program_id}"


async def issue_sign_in_link(store: WalletStore, public_base: str, program_id: str,
                             participant_id: str) -> SignInLink:
    """A new link for an active participant of the program (404 for anyone else)."""
    row = await Participant.select(Participant.status).where(
        (Participant.id == participant_id) & (Participant.program_id == program_id)
    ).first().run()
    if row is None or row["status"] != "active":
        raise NotFound("no such participant")
    # The program id rides in the token: spending finds the key under its program's tag.
    token = f"{LINK_PREFIX}{program_id}.{secrets.token_urlsafe(32)}"
    await store.client.set(program_keys.sign_in_link(program_id, hash_secret(token)), participant_id,
                           ex=int(LINK_TTL.total_seconds()))
    expires_at = datetime.now(timezone.utc) + LINK_TTL
    return SignInLink(url=f"{app_url(public_base, program_id)}/sign-in#{token}", expires_at=expires_at)


def program_of_token(token: str) -> str | None:
    if not token.startswith(LINK_PREFIX):
        return None
    program_id, dot, secret = token[len(LINK_PREFIX):].partition(".")
    if not dot or not program_id or not secret or len(program_id) > 40:
        return None
    return program_id


async def spend_sign_in_link(store: WalletStore, token: str) -> tuple[str, str]:
    """Spends the link's token: answers (program id, participant id) of an active
    participant. A suspended program refuses (409) and leaves the link unspent."""
    program_id = program_of_token(token)
    if program_id is None:
        raise Unauthenticated(REFUSED)
    key = program_keys.sign_in_link(program_id, hash_secret(token))
    if not await store.client.exists(key):
        raise Unauthenticated(REFUSED)
    await ensure_active(store, program_id)
    participant_id = await store.client.getdel(key)
    if participant_id is None:
        raise Unauthenticated(REFUSED)
    participant_id = reply_text(participant_id)
    row = await Participant.select(Participant.status).where(
        (Participant.id == participant_id) & (Participant.program_id == program_id)
    ).first().run()
    if row is None or row["status"] != "active":
        raise Unauthenticated(REFUSED)
    return program_id, participant_id
