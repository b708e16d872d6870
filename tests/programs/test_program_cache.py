"""The program view each process keeps: an expired view still answers at once while one
refresh runs, and a change made here is never undone by a refresh that started before it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from programs import programs
from programs.tables import Program
from tests.conftest import LiveServer
from tests.factories import new_program, wait_until

pytestmark = pytest.mark.sql


def expire(program_id: str) -> None:
    held = programs._cache.get(program_id)
    assert held is not None
    programs._cache.put(program_id, (0.0, held[1]))


async def test_readers_of_an_expired_view_get_it_at_once_and_one_refresh_brings_the_change(
        client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, name="Before")
    await programs.get_program(program.id)
    # Another process renames it: this one learns it only from SQL.
    await Program.update({Program.name: "After"}).where(Program.id == program.id).run()
    loads = 0
    load = programs._load

    async def counted(program_id: str) -> programs.ProgramView:
        nonlocal loads
        loads += 1
        return await load(program_id)

    monkeypatch.setattr(programs, "_load", counted)
    expire(program.id)
    views = await asyncio.gather(*(programs.get_program(program.id) for _ in range(50)))
    assert {v.name for v in views} == {"Before"}  # no reader waited for SQL
    await asyncio.gather(*[t for (_, pid), t in list(programs._refreshing.items()) if pid == program.id])
    assert loads == 1
    assert (await programs.get_program(program.id)).name == "After"


async def test_a_refresh_that_started_before_a_change_here_does_not_bring_the_old_view_back(
        client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, name="Old")
    await programs.get_program(program.id)
    expire(program.id)
    await programs.get_program(program.id)  # starts a refresh that reads "Old"...
    refresh = next(t for (_, pid), t in programs._refreshing.items() if pid == program.id)
    # ...while this process renames the program (as update_program does) before it lands.
    await Program.update({Program.name: "New"}).where(Program.id == program.id).run()
    programs.forget_program(program.id)
    await refresh
    assert (await programs.get_program(program.id)).name == "New"


@pytest.mark.redis_bound  # pub/sub between processes
async def test_another_process_drops_its_view_when_a_program_changes_here(client) -> None:  # type: ignore[no-untyped-def]
    """The live server keeps views for an hour: only the announcement can tell it."""
    program = await new_program(client, name="Before the meeting")
    server = LiveServer(extra_env={"RW_PROGRAM_CACHE_SECONDS": "3600"})
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as there:
            async def name_there() -> str:
                answer = await there.get("/v1/program", headers=program.headers)
                assert answer.status_code == 200, answer.text
                return str(answer.json()["name"])

            assert await name_there() == "Before the meeting"  # now kept there
            changed = await client.patch("/v1/program", json={"name": "Dealer meeting"}, headers=program.headers)
            assert changed.status_code == 200, changed.text
            assert await wait_until(name_there, "Dealer meeting") == "Dealer meeting"
    finally:
        server.stop()
