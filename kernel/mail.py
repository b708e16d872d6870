"""Outgoing email: console invites, password resets, sign-in codes, announcements.

With `RW_SMTP_URL` set, a message goes to that server (aiosmtplib; `smtps://` is TLS from
the first byte, `smtp://` upgrades with STARTTLS when the server offers it). Without it,
each message is written to `RW_DATA_DIR/outbox/` as an `.eml` file a person can open, so
an installation with no mail server still hands out its invites and codes.

The caller builds a `Mail` and awaits `send`; nothing here knows what the message is for.
Bodies are plain text: every link in them starts with `RW_PUBLIC_URL`, built by the caller.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import msgspec


class Mail(msgspec.Struct, frozen=True):
    to: str
    subject: str
    text: str


class SmtpTarget(msgspec.Struct, frozen=True):
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


class Mailer(msgspec.Struct, frozen=True):
    sender: str
    outbox: Path
    smtp: SmtpTarget | None = None

    @property
    def where(self) -> str:
        """Where messages go, in words (for `serve` to print)."""
        if self.smtp is None:
            return f"written to {self.outbox}/ as .eml files (set RW_SMTP_URL to send them)"
        return f"sent through {self.smtp.host}:{self.smtp.port}"


def mailer(smtp_url: str | None, sender: str, outbox: Path) -> Mailer:
    return Mailer(sender=sender, outbox=outbox, smtp=smtp_target(smtp_url) if smtp_url else None)


def smtp_target(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname or "localhost",
        port=parts.port or (465 if tls else 25),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def message(mailer: Mailer, mail: Mail) -> EmailMessage:
    out = EmailMessage()
    out["From"] = mailer.sender
    out["To"] = mail.to
    out["Subject"] = mail.subject
    out["Date"] = formatdate(localtime=False)
    out["Message-ID"] = make_msgid(domain="reward-wallet")
    out.set_content(mail.text)
    return out


async def send(mailer: Mailer, mail: Mail) -> None:
    """Sends one message, or writes it to the outbox. Raises on an SMTP failure: the caller
    decides whether the action that wanted the message still stands."""
    built = message(mailer, mail)
    if mailer.smtp is None:
        write_to_outbox(mailer.outbox, built)
        return
    import aiosmtplib

    target = mailer.smtp
    await aiosmtplib.send(
        built,
        hostname=target.host,
        port=target.port,
        use_tls=target.tls,
        start_tls=None if not target.tls else False,  # None: STARTTLS when the server offers it
        username=target.username,
        password=target.password,
        timeout=15,
    )


# Messages leaving in the background, referenced so the loop cannot drop one.
_sending: set[asyncio.Task[None]] = set()
log = logging.getLogger("rw.mail")


def send_later(mailer: Mailer, mail: Mail, what: str) -> None:
    """Sends in the background, for answers that must not wait on (or reveal by their timing)
    whether a message went out; a failure is logged by `what` it was, never with its text."""
    async def attempt() -> None:
        try:
            await send(mailer, mail)
        except Exception as exc:  # the answer is already given; the person can ask again
            log.warning("%s could not be mailed: %s", what, type(exc).__name__)

    task = asyncio.create_task(attempt())
    _sending.add(task)
    task.add_done_callback(_sending.discard)


def write_to_outbox(outbox: Path, built: EmailMessage) -> Path:
    outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Sortable by time, never colliding, and only readable by the server's user: an invite
    # or a sign-in code in it is a secret.
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}.eml"
    path = outbox / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(bytes(built))
    return path
