"""Mail goes to a real SMTP server when one is named, and to the outbox when none is."""

from __future__ import annotations

import email
import stat
from pathlib import Path

from kernel.mail import Mail, mailer, send
from tests.conftest import SmtpInbox


async def test_a_message_reaches_the_smtp_server(tmp_path: Path, smtp: tuple[SmtpInbox, int]) -> None:
    inbox, port = smtp
    sender = mailer(f"smtp://127.0.0.1:{port}", "Programs <programs@example.com>", tmp_path / "outbox")
    await send(sender, Mail(to="dana@example.com", subject="Your code", text="Your code is 123456."))
    [got] = inbox.messages
    assert got["To"] == "dana@example.com"
    assert got["Subject"] == "Your code"
    assert "123456" in got.get_payload()
    assert not (tmp_path / "outbox").exists(), "a sent message is not also kept in the outbox"


async def test_without_smtp_the_message_is_a_private_eml_file_in_the_outbox(tmp_path: Path) -> None:
    sender = mailer(None, "Programs <programs@example.com>", tmp_path / "outbox")
    await send(sender, Mail(to="dana@example.com", subject="Set your password", text="Open http://x/console/invite#t"))
    await send(sender, Mail(to="lee@example.com", subject="Set your password", text="Open http://x/console/invite#u"))
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    parsed = [email.message_from_bytes(path.read_bytes()) for path in files]
    assert {message["To"] for message in parsed} == {"dana@example.com", "lee@example.com"}
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert "outbox" in sender.where
