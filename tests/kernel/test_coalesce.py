"""Concurrent requests' Redis calls go out together (kernel/coalesce.py): one pipeline write
per turn of the event loop, and each caller still gets its own reply or its own error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError, DataError, ResponseError

from tests.factories import random_ref
from kernel.coalesce import Coalescer
from kernel.redis_functions import connect
from kernel.redis_pipe import RedisPipe, address_of


@pytest.fixture
async def client(valkey_url: str) -> Any:
    redis = connect(valkey_url)
    yield redis
    await redis.aclose()


async def test_calls_made_in_one_turn_share_one_write_and_each_gets_its_reply(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    writes: list[int] = []
    send = RedisPipe.send

    def counting(self: RedisPipe, batch: list[Any]) -> None:
        # Only this test's commands: the session's app shares the loop (its projector polls).
        if any(key in command for command, _ in batch):
            writes.append(len(batch))
        return send(self, batch)

    coalescer = Coalescer(client)
    await coalescer.execute("SET", key, 0)  # the connection is open before counting
    monkeypatch.setattr(RedisPipe, "send", counting)
    replies = await asyncio.gather(*[coalescer.execute("INCR", key) for _ in range(50)])
    assert sorted(replies) == list(range(1, 51))
    assert writes == [50]  # one write holding the 50 commands
    coalescer.close()


async def _blocked(client: Any, connection_id: int) -> None:
    """Until Valkey holds the connection's BLPOP (no guess at how long a busy machine takes)."""
    for _ in range(500):
        if b"cmd=blpop" in await client.execute_command("CLIENT", "LIST", "ID", connection_id):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the BLPOP never reached Valkey")


async def test_a_turns_commands_go_out_while_earlier_ones_still_wait(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    coalescer = Coalescer(client)
    connection_id = await coalescer.execute("CLIENT", "ID")
    written: list[tuple[str, bool]] = []
    send = RedisPipe.send

    def noting(self: RedisPipe, batch: list[Any]) -> None:
        written.extend((str(command[0]), blocked.done()) for command, _ in batch)
        return send(self, batch)

    monkeypatch.setattr(RedisPipe, "send", noting)
    blocked = coalescer.execute("BLPOP", key, 5)  # Valkey holds its reply until the push
    await _blocked(client, connection_id)
    echoed = coalescer.execute("ECHO", key)  # a later turn, while the BLPOP waits
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # Written at once, not after the BLPOP's reply: no lock-step.
    assert written == [("BLPOP", False), ("ECHO", False)]
    assert not echoed.done()
    assert await client.rpush(key, "x") == 1
    assert await asyncio.wait_for(blocked, 2) == [key.encode(), b"x"]
    assert await asyncio.wait_for(echoed, 2) == key.encode()  # answered in order, after it
    coalescer.close()


async def test_a_lost_connection_fails_its_waiting_commands_and_the_next_call_reconnects(client) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    coalescer = Coalescer(client)
    first_id = await coalescer.execute("CLIENT", "ID")
    waiting = coalescer.execute("BLPOP", key, 5)
    await _blocked(client, first_id)
    assert await client.execute_command("CLIENT", "KILL", "ID", first_id) == 1
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 2)
    assert await coalescer.execute("PING") == b"PONG"
    assert await coalescer.execute("CLIENT", "ID") != first_id
    coalescer.close()


async def test_an_argument_redis_cannot_carry_fails_its_own_command_only(client) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    coalescer = Coalescer(client)
    results = await asyncio.wait_for(asyncio.gather(
        coalescer.execute("INCR", key), coalescer.execute("SET", key, None),
        coalescer.execute("SET", key, "\ud800"),  # JSON can carry a lone surrogate
        coalescer.execute("INCR", key), return_exceptions=True), 10)
    assert results[0] == 1 and results[3] == 2
    assert isinstance(results[1], DataError) and isinstance(results[2], UnicodeEncodeError)
    # Nothing was written for them, so every later reply still goes to its own caller.
    assert await asyncio.wait_for(asyncio.gather(*[coalescer.execute("INCR", key) for _ in range(3)]), 10) == [3, 4, 5]
    coalescer.close()


async def test_a_caller_that_gave_up_before_the_write_sends_nothing(client) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    coalescer = Coalescer(client)
    abandoned = coalescer.execute("INCR", key)
    abandoned.cancel()
    assert await coalescer.execute("INCR", key) == 1  # the abandoned INCR never ran
    coalescer.close()


async def test_closing_fails_what_is_queued_and_a_later_call_connects_again(client) -> None:  # type: ignore[no-untyped-def]
    coalescer = Coalescer(client)
    queued = [coalescer.execute("PING") for _ in range(3)]  # not flushed yet: the turn has not ended
    coalescer.close()
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results), results
    assert await coalescer.execute("PING") == b"PONG"
    coalescer.close()


def test_each_event_loop_gets_its_own_connection(valkey_url: str) -> None:
    """Two loops in two threads share one client (a sync test client's portal beside the test)."""
    import threading

    import uvloop

    redis = connect(valkey_url)
    key = random_ref("coalesce")
    results: list[Any] = []

    def in_a_thread() -> None:
        async def run() -> list[Any]:
            return await asyncio.gather(*[redis.coalescer.execute("INCR", key) for _ in range(50)])
        results.append(uvloop.run(run()))

    threads = [threading.Thread(target=in_a_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results[0] + results[1]) == list(range(1, 101))
    asyncio.run(redis.aclose())


async def test_a_user_and_password_sign_in_and_a_refused_sign_in_leaves_no_connection(private_valkey: str) -> None:
    admin = connect(private_valkey)
    host = private_valkey.rsplit("@", 1)[1]  # 127.0.0.1:port/0
    await admin.execute_command("ACL", "SETUSER", "dealer", "on", ">right-password", "~*", "+@all")
    before = len(await admin.client_list())
    as_user = connect(f"redis://dealer:right-password@{host}")
    wrong = connect(f"redis://dealer:wrong-password@{host}")
    try:
        assert await as_user.coalescer.execute("ACL", "WHOAMI") == b"dealer"
        for _ in range(3):
            with pytest.raises(ConnectionError):  # redis-py's AuthenticationError is one
                await wrong.coalescer.execute("PING")
        await asyncio.sleep(0.1)
        assert len(await admin.client_list()) == before + 1  # as_user's; none of the refused ones
    finally:
        await as_user.aclose()
        await wrong.aclose()
        await admin.aclose()


async def test_the_connection_signs_in_and_selects_the_urls_database(valkey_url: str) -> None:
    key = random_ref("coalesce")
    in_db_5 = connect(valkey_url.rsplit("/", 1)[0] + "/5")  # the session's Valkey asks for a password
    in_db_0 = connect(valkey_url.rsplit("/", 1)[0] + "/0")
    try:
        assert await in_db_5.coalescer.execute("SET", key, "five") == b"OK"
        assert await in_db_5.get(key) == b"five"
        assert await in_db_0.get(key) is None
        connection_id = await in_db_5.coalescer.execute("CLIENT", "ID")
    finally:
        await in_db_5.aclose()
    # Closing the client closes the coalescer's own connection too.
    for _ in range(50):
        if not await in_db_0.execute_command("CLIENT", "LIST", "ID", connection_id):
            break
        await asyncio.sleep(0.02)
    assert not await in_db_0.execute_command("CLIENT", "LIST", "ID", connection_id)
    await in_db_0.aclose()


def test_only_plain_addresses_get_their_own_connection() -> None:
    plain = address_of(connect("redis://:secret@127.0.0.1:6390/2"))
    assert plain is not None and (plain.host, plain.port, plain.password, plain.db) == ("127.0.0.1", 6390, "secret", 2)
    local = address_of(connect("unix:///tmp/valkey.sock?password=p&db=1"))
    assert local is not None and (local.path, local.db) == ("/tmp/valkey.sock", 1)
    # What this client cannot speak keeps redis-py's pipeline: TLS, RESP3, decoded replies.
    for url in ("rediss://127.0.0.1:6390", "redis://127.0.0.1:6390?protocol=3",
                "redis://127.0.0.1:6390?decode_responses=True"):
        assert address_of(connect(url)) is None, url


async def test_a_client_redis_py_speaks_for_still_coalesces(valkey_url: str) -> None:
    resp3 = connect(valkey_url + ("&" if "?" in valkey_url else "?") + "protocol=3")
    key = random_ref("coalesce")
    try:
        coalescer = Coalescer(resp3)
        replies = await asyncio.gather(*[coalescer.execute("INCR", key) for _ in range(20)])
        assert sorted(replies) == list(range(1, 21))
    finally:
        await resp3.aclose()


async def test_one_calls_error_is_its_own(client) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    coalescer = Coalescer(client)
    results = await asyncio.gather(coalescer.execute("INCR", key), coalescer.execute("FCALL", "rw_no_such", 0),
                                   coalescer.execute("INCR", key), return_exceptions=True)
    assert results[0] in (1, 2) and results[2] in (1, 2) and results[0] != results[2]
    assert isinstance(results[1], ResponseError)
    # Alone in its turn, an error is still the caller's, and the next call is unaffected.
    with pytest.raises(ResponseError):
        await coalescer.execute("FCALL", "rw_no_such", 0)
    assert await coalescer.execute("INCR", key) == 3
    coalescer.close()


async def test_a_server_that_is_gone_fails_every_call_of_the_turn_with_the_connection_error() -> None:
    broken = connect("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        coalescer = Coalescer(broken)
        results = await asyncio.gather(*[coalescer.execute("PING") for _ in range(3)], return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results), results
        # And the next turn tries again, failing the same way rather than hanging.
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(coalescer.execute("PING"), 10)
    finally:
        await broken.aclose()
