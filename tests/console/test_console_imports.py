"""Participants imported from a CSV uploaded in the console: the file becomes a job the
worker runs chunk by chunk, its page shows progress, and when it is done the counts and
every bad row with its spreadsheet row number; a job a worker died on is finished by the
next one without a participant twice."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kernel.ids import new_id
from programs import participant_imports
from programs.tables import Participant, ParticipantImport
from tests.console.sessions import csrf_of, get, person_in
from tests.factories import new_program, wait_until
from wallet.store import WalletStore

pytestmark = pytest.mark.sql

HEADER = "external_id,display_name,email,team_id,segment\n"


def sheet(count: int, bad: dict[int, str] | None = None) -> str:
    """`count` rows; `bad` replaces the line of a record index with a broken one."""
    lines = [f"e-{i},Person {i},p{i}@dealer.example,,north" for i in range(count)]
    for index, line in (bad or {}).items():
        lines[index] = line
    return HEADER + "\n".join(lines) + "\n"


async def upload(client: Any, program_id: str, session: dict[str, str], text: str | bytes, csrf: str) -> Any:
    data = text.encode() if isinstance(text, str) else text
    response = await client.post(f"/console/p/{program_id}/participants/import", headers=session,
                                 data={"csrf": csrf}, files={"file": ("dealers.csv", data, "text/csv")},
                                 follow_redirects=False)
    client.cookies.clear()
    return response


async def test_an_uploaded_file_is_imported_by_the_worker_with_its_progress_and_bad_rows(client: Any,
                                                                                          redis: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "manager")
    listing = await get(client, f"/console/p/{program.id}/participants", session)
    assert "Import participants" in listing.text
    text = sheet(1_200, bad={10: "e-10,,p10@dealer.example,,north", 700: "e-700,Person 700,p1@DEALER.example,,north"})
    sent = await upload(client, program.id, session, text, csrf_of(listing.text))
    assert sent.status_code == 303, sent.text
    job_path = sent.headers["location"]
    waiting = await get(client, job_path, session)
    # Queued, unless a live server's worker (it shares the database) has already taken it.
    assert waiting.status_code == 200 and 'max="1200"' in waiting.text and 'role="status"' in waiting.text
    assert (await get(client, job_path + "/progress", session)).json()["status"] in ("queued", "running", "done")

    await participant_imports.run_due(WalletStore(redis))  # the worker's pass (or a live server's worker took it)

    async def status() -> str:
        return (await get(client, job_path + "/progress", session)).json()["status"]

    assert await wait_until(status, "done") == "done"
    progress = (await get(client, job_path + "/progress", session)).json()
    assert progress == {"status": "done", "total_rows": 1200, "done_rows": 1200, "created": 1198, "updated": 0,
                        "unchanged": 0, "error_count": 2}
    done = html.unescape((await get(client, job_path, session)).text)
    assert re.search(r"<td class=\"num\">12</td><td>e-10</td><td>[^<]*display_name", done), "row 12: the 11th record"
    assert "<td class=\"num\">702</td><td>e-700</td><td>another participant of this program has this email" in done
    people = await client.get("/v1/participants?limit=1&q=Person%201199", headers=program.headers)
    (person,) = people.json()["items"]
    wallet = await client.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)
    assert wallet.status_code == 200 and wallet.json()["available"] == 0, "every new participant has a wallet"
    stored = await ParticipantImport.select(ParticipantImport.csv).where(
        ParticipantImport.program_id == program.id).first().run()
    assert stored["csv"] == "", "the file is not kept once imported"

    # The same file again changes nothing.
    again = await upload(client, program.id, session, text, csrf_of(listing.text))
    await participant_imports.run_due(WalletStore(redis))
    job_path = again.headers["location"]
    assert await wait_until(status, "done") == "done"
    figures = (await get(client, job_path + "/progress", session)).json()
    assert (figures["created"], figures["unchanged"], figures["error_count"]) == (0, 1198, 2)


async def test_a_job_a_worker_died_on_is_finished_by_the_next_without_doubles(client: Any, redis: Any) -> None:
    program = await new_program(client)
    text = sheet(1_100)
    store = WalletStore(redis)
    # What a worker killed after its first chunk leaves: 500 rows in, their progress recorded,
    # its lease not yet run out. Written as one row, never queued: a live server's worker in
    # this session would take a queued job before the test could set it up.
    now = datetime.now(timezone.utc)
    job_id = new_id("imp")
    await ParticipantImport.insert(ParticipantImport(
        id=job_id, program_id=program.id, status="running", total_rows=1_100, done_rows=500, created=500, updated=0,
        unchanged=0, error_count=0, errors="[]", csv=text, file_name="big.csv", created_by="user:test",
        created_at=now, lease_until=now + timedelta(minutes=1), finished_at=None, failure=None)).run()
    job = await participant_imports.import_job(program.id, job_id)
    await participant_imports.import_sheet(store, program.id, HEADER + "".join(text.splitlines(True)[1:501]))
    assert await participant_imports.run_due(store) == 0, "another worker holds the lease"
    assert (await participant_imports.import_job(program.id, job.id)).done_rows == 500
    await ParticipantImport.update({ParticipantImport.lease_until: datetime.now(timezone.utc)}).where(
        ParticipantImport.id == job.id).run()
    await participant_imports.run_due(store)  # this pass, or a live server's worker, finishes it

    async def status() -> str:
        return (await participant_imports.import_job(program.id, job.id)).status

    assert await wait_until(status, "done") == "done"
    finished = await participant_imports.import_job(program.id, job.id)
    assert (finished.status, finished.done_rows, finished.created, finished.error_count) == ("done", 1100, 1100, 0)
    assert await Participant.count().where(Participant.program_id == program.id).run() == 1100


async def test_an_upload_is_refused_in_words_and_a_viewer_cannot_import(client: Any) -> None:
    program = await new_program(client)
    _, manager = await person_in(client, program, "manager")
    csrf = csrf_of((await get(client, f"/console/p/{program.id}/participants", manager)).text)
    no_header = await upload(client, program.id, manager, "e-1,Ann\n", csrf)
    assert no_header.status_code == 422 and "header naming external_id, display_name" in html.unescape(no_header.text)
    latin1 = await upload(client, program.id, manager, (HEADER + "e-1,Jürgen,,,\n").encode("latin-1"), csrf)
    assert latin1.status_code == 422 and "CSV UTF-8" in html.unescape(latin1.text)
    forged = await upload(client, program.id, manager, sheet(3), "forged")
    assert forged.status_code == 403
    _, viewer = await person_in(client, program, "viewer")
    page = await get(client, f"/console/p/{program.id}/participants", viewer)
    assert "Import participants" not in page.text
    refused = await upload(client, program.id, viewer, sheet(3), csrf_of(page.text))
    assert refused.status_code == 403
    assert await ParticipantImport.count().where(ParticipantImport.program_id == program.id).run() == 0
