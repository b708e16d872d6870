"""An email is one participant's per program, whatever its case, held by the database too:
enrolments racing for one address end with one participant and the same 422 the check
gives, never a 500; addresses shared before the rule keep working on the first holder."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.factories import new_participant, new_program, random_ref

pytestmark = pytest.mark.sql

CONCURRENT = 8

fill = importlib.import_module("programs.piccolo_migrations.programs_2026_12_02t10_50_01_000000")


def cased(address: str, n: int) -> str:
    """The same address in another case for each n."""
    return "".join(c.upper() if (n >> (i % 4)) & 1 else c for i, c in enumerate(address))


async def holders(client: Any, program: Any, address: str) -> list[dict[str, Any]]:
    page = (await client.get("/v1/participants", params={"q": address.split("@")[0]},
                             headers=program.headers)).json()
    return [p for p in page["items"] if (p["email"] or "").lower() == address]


async def test_concurrent_enrolments_of_one_email_in_any_case_make_one_participant(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    address = f"{random_ref('race')}@dealer.example"
    answers = await asyncio.gather(*(client.post("/v1/participants", headers=program.headers, json={
        "external_id": random_ref("ext"), "display_name": f"Racer {n}", "email": cased(address, n)})
        for n in range(CONCURRENT)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [422] * (CONCURRENT - 1), [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 422):
        assert refused.json()["code"] == "validation_error"
        assert refused.json()["invalid_params"][0]["name"] == "email"
    assert len(await holders(client, program, address)) == 1
    # Changing another participant's email to it (any case) is refused the same way.
    other = await new_participant(client, program)
    moved = await client.patch(f"/v1/participants/{other['id']}", headers=program.headers,
                               json={"email": address.upper()})
    assert moved.status_code == 422 and moved.json()["code"] == "validation_error"


async def test_the_database_refuses_a_second_holder_that_skips_the_check(client) -> None:  # type: ignore[no-untyped-def]
    from programs.tables import Participant

    program = await new_program(client)
    address = f"{random_ref('direct')}@dealer.example"
    await new_participant(client, program, email=address)
    now = datetime.now(timezone.utc)
    twin = Participant(id=random_ref("ptc"), program_id=program.id, external_id="twin",
                       program_external=f"{program.id}:twin", public_id=random_ref("p"), display_name="Twin",
                       email=address.upper(), email_key=address, created_at=now, updated_at=now)
    with pytest.raises(Exception) as refused:
        await Participant.insert(twin).run()
    assert "unique" in str(refused.value).lower()
    # Another program may hold the same address; a participant without an email holds none.
    await new_participant(client, await new_program(client), email=address)
    await new_participant(client, program)
    await new_participant(client, program)


async def test_rows_from_before_the_index_are_keyed_first_holder_first(client) -> None:  # type: ignore[no-untyped-def]
    from programs.tables import Participant

    program = await new_program(client)
    address = f"{random_ref('old')}@dealer.example"
    then = datetime.now(timezone.utc) - timedelta(days=30)
    # As a database from before the rule holds them: two with one address, no keys yet.
    rows = [Participant(id=random_ref("ptc"), program_id=program.id, external_id=name,
                        program_external=f"{program.id}:{name}", public_id=random_ref("p"), display_name=name,
                        email=email, email_key=None, created_at=then + timedelta(minutes=n), updated_at=then)
            for n, (name, email) in enumerate([("first", address.upper()), ("second", address),
                                               ("alone", f"alone-{address}")])]
    await Participant.insert(*rows).run()
    assert await fill.fill_email_keys() >= 2
    keys = {r["external_id"]: r["email_key"] for r in await Participant.select(
        Participant.external_id, Participant.email_key).where(Participant.program_id == program.id).run()}
    assert keys == {"first": address, "second": None, "alone": f"alone-{address}"}
    assert await fill.fill_email_keys() == 0  # nothing left to do the second time
    again = await client.post("/v1/participants", headers=program.headers,
                              json={"external_id": random_ref("ext"), "display_name": "Third", "email": address})
    assert again.status_code == 422 and again.json()["code"] == "validation_error"
