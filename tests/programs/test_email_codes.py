"""Sign-in by email code: the same 202 for every address, a 6-digit code mailed through a
real SMTP server, one use, five tries, and limits per address and per client."""

from __future__ import annotations

import email
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from programs import email_codes
from programs import keys as program_keys
from programs.credentials import hash_secret
from tests.conftest import SmtpInbox
from tests.factories import another_worker, away_from_a_window_edge, bearer, new_participant, new_program, random_ref, wait_until

pytestmark = pytest.mark.sql


@pytest.fixture
async def mailing(settings, migrated, smtp) -> AsyncIterator[tuple[AsyncTestClient, SmtpInbox]]:  # type: ignore[no-untyped-def]
    handler, port = smtp
    async with another_worker(settings, smtp_url=f"smtp://127.0.0.1:{port}") as app_client:
        yield app_client, handler


def address() -> str:
    return f"{random_ref('seller')}@example.com"


async def ask(client: Any, program_id: str, to: str) -> Any:
    return await client.post("/v1/auth/email-codes", json={"program_id": program_id, "email": to})


def mail_to(handler: SmtpInbox, to: str) -> list[email.message.Message]:
    return [m for m in handler.messages if m["To"] == to]


async def arrived(handler: SmtpInbox, to: str, count: int = 1) -> list[email.message.Message]:
    """The mail to `to` once `count` messages reached the SMTP server (it leaves in the background)."""
    async def read() -> int:
        return len(mail_to(handler, to))

    assert await wait_until(read, count) == count
    return mail_to(handler, to)


async def code_sent_to(handler: SmtpInbox, to: str) -> str:
    message = (await arrived(handler, to))[-1]
    found = re.search(r"\b(\d{6})\b", message.get_payload())
    assert found, message.get_payload()
    return found.group(1)


async def verify(client: Any, program_id: str, to: str, code: str) -> Any:
    return await client.post("/v1/auth/email-codes/verify", json={"program_id": program_id, "email": to, "code": code})


async def test_a_mailed_code_signs_in_once(mailing) -> None:  # type: ignore[no-untyped-def]
    client, handler = mailing
    program = await new_program(client)
    to = address()
    person = await new_participant(client, program, email=to.upper())  # addresses match whatever their case
    assert (await ask(client, program.id, to)).status_code == 202
    code = await code_sent_to(handler, to)
    signed = await verify(client, program.id, to, code)
    assert signed.status_code == 200, signed.text
    assert "rw_refresh=" in signed.headers["set-cookie"]
    me = await client.get("/v1/me", headers=bearer(signed.json()["access_token"]))
    assert me.json()["id"] == person["id"]
    again = await verify(client, program.id, to, code)
    assert again.status_code == 401
    assert again.json()["code"] == "unauthenticated"


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(mailing) -> None:  # type: ignore[no-untyped-def]
    client, handler = mailing
    program = await new_program(client)
    known, unknown = address(), address()
    await new_participant(client, program, email=known)
    answers = [await ask(client, program.id, to) for to in (unknown, known)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    await arrived(handler, known)
    assert not mail_to(handler, unknown)
    unknown_program = await ask(client, "prg_nosuchprogram", known)
    assert unknown_program.status_code == 202


async def test_five_wrong_tries_end_the_code(mailing) -> None:  # type: ignore[no-untyped-def]
    client, handler = mailing
    program = await new_program(client)
    to = address()
    await new_participant(client, program, email=to)
    await ask(client, program.id, to)
    code = await code_sent_to(handler, to)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert (await verify(client, program.id, to, wrong)).status_code == 401
    # The right code, after five wrong ones, no longer works.
    assert (await verify(client, program.id, to, code)).status_code == 401


async def test_four_wrong_tries_still_leave_the_right_one(mailing) -> None:  # type: ignore[no-untyped-def]
    client, handler = mailing
    program = await new_program(client)
    to = address()
    await new_participant(client, program, email=to)
    await ask(client, program.id, to)
    code = await code_sent_to(handler, to)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        assert (await verify(client, program.id, to, wrong)).status_code == 401
    assert (await verify(client, program.id, to, code)).status_code == 200


async def test_the_code_is_stored_hashed_and_expires_in_ten_minutes(mailing, redis) -> None:  # type: ignore[no-untyped-def]
    client, handler = mailing
    program = await new_program(client)
    to = address()
    await new_participant(client, program, email=to)
    await ask(client, program.id, to)
    code = await code_sent_to(handler, to)
    key = program_keys.email_code(program.id, hash_secret(to))
    stored = {k.decode(): v.decode() for k, v in (await redis.hgetall(key)).items()}
    assert code not in "".join(stored.values())
    assert stored["code_hash"] != code and len(stored["code_hash"]) == 64
    assert 0 < await redis.ttl(key) <= 600


async def test_codes_are_rate_limited_per_address_known_or_not(mailing) -> None:  # type: ignore[no-untyped-def]
    client, _ = mailing
    program = await new_program(client)
    await away_from_a_window_edge(email_codes.SEND_WINDOW_SECONDS)
    known = address()
    await new_participant(client, program, email=known)
    for to in (known, address()):  # one known, one not: the same limit
        answers = [(await ask(client, program.id, to)).status_code for _ in range(email_codes.SENDS_PER_EMAIL + 1)]
        assert answers == [202] * email_codes.SENDS_PER_EMAIL + [429]


async def test_codes_are_rate_limited_per_client_address(mailing) -> None:  # type: ignore[no-untyped-def]
    client, _ = mailing
    program = await new_program(client)
    await away_from_a_window_edge(email_codes.SEND_WINDOW_SECONDS)
    answers = [(await ask(client, program.id, address())).status_code for _ in range(email_codes.SENDS_PER_CLIENT + 1)]
    assert answers[-1] == 429 and answers[:-1] == [202] * email_codes.SENDS_PER_CLIENT
    refused = await ask(client, program.id, address())
    assert refused.json()["code"] == "rate_limited"


async def test_an_email_belongs_to_one_participant_of_a_program(client) -> None:  # type: ignore[no-untyped-def]
    program, other = await new_program(client), await new_program(client)
    to = address()
    first = await new_participant(client, program, email=to)
    again = await client.post("/v1/participants", headers=program.headers,
                              json={"external_id": random_ref("ext"), "display_name": "Twin", "email": to.upper()})
    assert again.status_code == 422 and again.json()["code"] == "validation_error"
    second = await new_participant(client, program)
    moved = await client.patch(f"/v1/participants/{second['id']}", headers=program.headers, json={"email": to})
    assert moved.status_code == 422
    kept = await client.patch(f"/v1/participants/{first['id']}", headers=program.headers, json={"email": to})
    assert kept.status_code == 200
    await new_participant(client, other, email=to)  # another program's participant may have it
    report = (await client.post("/v1/participants/import", headers=program.headers, json={
        "csv": f"external_id,display_name,email\n{random_ref('ext')},Copy,{to}\n"})).json()
    assert report["created"] == 0 and "email" in report["errors"][0]["error"]


async def test_a_shared_address_from_before_the_rule_signs_no_one_in(mailing) -> None:  # type: ignore[no-untyped-def]
    from programs.tables import Participant

    client, handler = mailing
    program = await new_program(client)
    to = address()
    await new_participant(client, program, email=to)
    twin = await new_participant(client, program)
    await Participant.update({Participant.email: to}).where(Participant.id == twin["id"]).run()
    assert (await ask(client, program.id, to)).status_code == 202
    # Asked after it, a single person's address gets its mail: the shared one got none.
    single = address()
    await new_participant(client, program, email=single)
    await ask(client, program.id, single)
    await arrived(handler, single)
    assert not mail_to(handler, to)


@pytest.mark.parametrize("body", [{}, {"program_id": "p"}, {"program_id": "p", "email": "not-an-email"},
                                  {"program_id": "p", "email": "a@b.c", "extra": 1}])
async def test_malformed_requests_are_refused_clearly(client, body: dict) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/auth/email-codes", json=body)
    assert response.status_code in (400, 422)
    assert response.json()["code"] == "validation_error"
