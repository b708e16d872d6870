"""Signed daily checkpoints of the ledger chain, their public list, a participant's statement
with a Merkle proof of each entry, `reward-wallet verify statement`, and `audit` catching a
chain rewritten under its checkpoints.

A day is made to end without waiting for midnight the way the chain sees time: the
program's journal stream is moved to the next UTC midnight (XSETID), as the clock passing
it would, so the next entry is dated the next day and everything before is over."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fulfillment.sealing import Sealer
from tests.factories import ProgramHandle, bearer, grant, new_participant, new_program, tokens_for
from tests.wallet.test_chain import audit, fully_linked
from wallet import keys, merkle
from wallet.chain import genesis, next_link, verify_chain
from wallet.checkpoints import CheckpointDoc, make_daily, signature_holds
from wallet.signing import PublicKey, key_id_of
from wallet.statements import verify
from wallet.tables import ChainHead, Checkpoint, LedgerEntry, SigningKey

pytestmark = pytest.mark.sql

REWARD_WALLET = str(Path(sys.executable).parent / "reward-wallet")


@pytest.fixture
def sealer(settings: Any) -> Sealer:
    return Sealer(settings.encryption_key)


async def end_the_day(redis: Any, program_id: str) -> date:
    """Moves the program's journal to the next UTC midnight after its last entry: that day is
    over. Answers the day that ended."""
    stream = keys.journal(program_id)
    last = (await redis.xinfo_stream(stream))
    last_id = last.get("last-generated-id") or last.get(b"last-generated-id")
    last_ms = int((last_id.decode() if isinstance(last_id, bytes) else last_id).split("-")[0])
    ended = datetime.fromtimestamp(last_ms / 1000, tz=timezone.utc).date()
    midnight = datetime.combine(ended + timedelta(days=1), datetime.min.time(), timezone.utc)
    await redis.execute_command("XSETID", stream, f"{int(midnight.timestamp() * 1000)}-0")
    return ended


async def links_of(program_id: str) -> list[str]:
    rows = await LedgerEntry.select(LedgerEntry.link).where(LedgerEntry.program_id == program_id).order_by(
        LedgerEntry.seq).run()
    return [r["link"] for r in rows]


async def two_sellers(client: Any, grants: int = 3) -> tuple[ProgramHandle, dict[str, Any], dict[str, str]]:
    """A program where two participants' grants interleave; answers the first one's token."""
    program = await new_program(client)
    ann, bob = await new_participant(client, program), await new_participant(client, program)
    for n in range(grants):
        for person in (ann, bob):
            assert (await grant(client, program, person["id"], 10 + n)).status_code == 201
    await fully_linked(program.id, 2 * grants)
    token = (await tokens_for(client, program, ann["id"]))["access_token"]
    return program, ann, bearer(token)


async def statement_of(client: Any, headers: dict[str, str], **params: str) -> dict[str, Any]:
    answer = await client.get("/v1/me/statement", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def verify_cli(document: dict[str, Any], tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(document))
    return subprocess.run([REWARD_WALLET, "verify", "statement", str(path), *extra], capture_output=True, text=True,
                          timeout=60)


async def test_a_finished_day_gets_one_signed_checkpoint_and_a_second_run_adds_none(
        client: Any, redis: Any, sealer: Sealer) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    for n in range(5):
        assert (await grant(client, program, person["id"], 1 + n)).status_code == 201
    await fully_linked(program.id, 5)
    assert await make_daily(redis, sealer, program.id) == 0, "today is not over"

    day = await end_the_day(redis, program.id)
    assert await make_daily(redis, sealer, program.id) == 1
    assert await make_daily(redis, sealer, program.id) == 0, "made once"
    rows = await Checkpoint.select().where(Checkpoint.program_id == program.id).run()
    assert len(rows) == 1
    row = rows[0]
    links = await links_of(program.id)
    head = await ChainHead.select().where(ChainHead.program_id == program.id).first().run()
    assert (row["day"], row["first_seq"], row["last_seq"], row["count"]) == (day.isoformat(), 1, 5, 5)
    assert (row["previous_link"], row["head_link"], row["merkle_root"]) == (genesis(program.id), head["link"],
                                                                            merkle.root(links))
    # The key: its private half sealed at rest, its public half verifies the signature.
    key = await SigningKey.select().where(SigningKey.program_id == program.id).first().run()
    private_hex = sealer.open(key["private_key"])
    assert private_hex not in key["private_key"]
    public = PublicKey(algorithm="ed25519", key=key["public_key"], key_id=key["key_id"])
    assert key["key_id"] == key_id_of(key["public_key"])
    from wallet.checkpoints import document_of

    document = document_of(row)
    assert signature_holds(document, public)
    assert not signature_holds(CheckpointDoc(**{**_fields(document), "count": 6}), public)

    # The next grant is dated the next day, which is not over: nothing more to sign yet.
    assert (await grant(client, program, person["id"], 7)).status_code == 201
    await fully_linked(program.id, 6)
    assert await make_daily(redis, sealer, program.id) == 0
    answer = await asyncio.to_thread(audit, program.id)
    assert answer.returncode == 0 and "the chain holds (6 entries" in answer.stdout, answer.stdout + answer.stderr


def _fields(document: CheckpointDoc) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(document)


async def test_checkpoints_are_public_only_when_the_program_publishes_them(
        client: Any, redis: Any, sealer: Sealer) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    first_days = []
    for points in (5, 6):  # two days, two entries each
        for _ in range(2):
            assert (await grant(client, program, person["id"], points)).status_code == 201
        await fully_linked(program.id, 2 * (points - 4))
        first_days.append((await end_the_day(redis, program.id)).isoformat())
    assert await make_daily(redis, sealer, program.id) == 2
    path = f"/v1/public/programs/{program.id}/checkpoints"
    hidden = await client.get(path)
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"
    assert (await client.get("/v1/public/programs/prg_nobody/checkpoints")).status_code == 404

    turned = await client.patch("/v1/program", json={"publish_checkpoints": True}, headers=program.headers)
    assert turned.status_code == 200 and turned.json()["publish_checkpoints"] is True
    shown = await client.get(path, params={"limit": 1})
    assert shown.status_code == 200, shown.text
    body = shown.json()
    public = PublicKey(**body["public_key"])
    newest = CheckpointDoc(**body["items"][0])
    assert (newest.day, newest.first_seq, newest.last_seq, newest.kind) == (first_days[1], 3, 4, "daily")
    assert signature_holds(newest, public) and body["next_cursor"]
    older = (await client.get(path, params={"limit": 1, "cursor": body["next_cursor"]})).json()
    oldest = CheckpointDoc(**older["items"][0])
    assert (oldest.day, oldest.first_seq, oldest.last_seq) == (first_days[0], 1, 2)
    assert older["next_cursor"] is None
    assert oldest.head_link == newest.previous_link, "consecutive checkpoints join"
    bad = await client.get(path, params={"cursor": "!!"})
    assert bad.status_code in (400, 422) and bad.json()["code"] == "validation_error"


async def test_a_statement_proves_each_entry_and_verifies_offline(client: Any, redis: Any, sealer: Sealer,
                                                                  tmp_path: Path) -> None:
    program, ann, headers = await two_sellers(client)
    # Before any daily checkpoint: every entry against an interim one, signed now.
    document = await statement_of(client, headers)
    assert [c["kind"] for c in document["checkpoints"]] == ["interim"]
    assert [e["entry"]["points"] for e in document["entries"]] == [10, 11, 12]
    assert {e["entry"]["participant_id"] for e in document["entries"]} == {ann["id"]}, "only my entries"
    assert verify(document) == []

    # The day ends and is checkpointed; a new entry falls on the next (open) day.
    await end_the_day(redis, program.id)
    assert await make_daily(redis, sealer, program.id) == 1
    assert (await grant(client, program, ann["id"], 99)).status_code == 201
    await fully_linked(program.id, 7)
    tomorrow = (datetime.now(timezone.utc).date() + timedelta(days=2)).isoformat()
    document = await statement_of(client, headers, to=tomorrow)
    assert [c["kind"] for c in document["checkpoints"]] == ["daily", "interim"]
    assert [(e["seq"], e["checkpoint"]) for e in document["entries"]] == [(1, 0), (3, 0), (5, 0), (7, 1)]
    assert document["public_key"]["key_id"] == document["checkpoints"][0]["key_id"]
    assert verify(document) == []
    good = await asyncio.to_thread(verify_cli, document, tmp_path, "--public-key", document["public_key"]["key"])
    assert good.returncode == 0 and "the statement holds (4 entries" in good.stdout, good.stdout + good.stderr

    # Each kind of tampering is caught and named.
    edited = copy.deepcopy(document)
    edited["entries"][1]["entry"]["points"] = 1100
    assert any("entry seq 3" in p and "edited" in p for p in verify(edited))
    proof = copy.deepcopy(document)
    proof["entries"][0]["proof"][0] = "00" * 32
    assert any("entry seq 1" in p and "Merkle proof" in p for p in verify(proof))
    signature = copy.deepcopy(document)
    signature["checkpoints"][0]["signature"] = "11" * 64
    assert any(f"checkpoint {document['checkpoints'][0]['day']} (daily): the signature" in p
               for p in verify(signature))
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    key = copy.deepcopy(document)
    key["public_key"]["key"] = stranger
    problems = verify(key)
    assert any("public key does not match its key id" in p for p in problems)
    assert any("the signature does not verify" in p for p in problems)
    resigned = copy.deepcopy(key)  # even with a matching id, the signatures are not that key's
    resigned["public_key"]["key_id"] = key_id_of(stranger)
    assert any("the signature does not verify" in p for p in verify(resigned))
    assert verify(document, expected_key=stranger) == ["the public key is not the one the program publishes"]
    bad = await asyncio.to_thread(verify_cli, edited, tmp_path)
    assert bad.returncode == 1 and "entry seq 3" in bad.stdout and "edited" in bad.stdout, bad.stdout
    assert verify({"entries": "no"})[0].startswith("the statement is malformed")


async def test_a_statement_range_is_bounded(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    headers = bearer((await tokens_for(client, program, person["id"]))["access_token"])
    for params in ({"from": "2026-03-02", "to": "2026-03-01"}, {"from": "2025-01-01", "to": "2026-01-02"}):
        answer = await client.get("/v1/me/statement", params=params, headers=headers)
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error", answer.text
    assert (await client.get("/v1/me/statement", params={"from": "yesterday"}, headers=headers)).status_code == 400
    empty = await statement_of(client, headers, **{"from": "2025-01-01", "to": "2025-12-31"})
    assert (empty["entries"], empty["checkpoints"], empty["from"], empty["to"]) == ([], [], "2025-01-01", "2025-12-31")
    assert (await client.get("/v1/me/statement", headers=program.headers)).status_code in (401, 403)


@pytest.mark.one_store  # the verdict on rows it is handed: the same on every store
async def test_audit_names_a_checkpoint_the_rewritten_chain_no_longer_matches(
        client: Any, redis: Any, sealer: Sealer) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    for n in range(4):
        assert (await grant(client, program, person["id"], 10 + n)).status_code == 201
    await fully_linked(program.id, 4)
    day = await end_the_day(redis, program.id)
    assert await make_daily(redis, sealer, program.id) == 1
    # Someone with the database edits seq 2 and rewrites every link after it, and the head:
    # the chain alone holds again.
    rows = await LedgerEntry.select().where(LedgerEntry.program_id == program.id).order_by(LedgerEntry.seq).run()
    rows[1]["points"] += 1000
    link = genesis(program.id)
    for row in rows:
        link = next_link(link, row)
        await LedgerEntry.update({LedgerEntry.points: row["points"], LedgerEntry.link: link}).where(
            LedgerEntry.transaction_id == row["transaction_id"]).run()
    await ChainHead.update({ChainHead.link: link}).where(ChainHead.program_id == program.id).run()
    assert (await verify_chain(program.id)).ok
    answer = await asyncio.to_thread(audit, program.id)
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert f"program {program.id}: BROKEN at seq 1: checkpoint_mismatch: the checkpoint of {day} (seqs 1 to 4) " \
           "no longer matches the chain" in answer.stdout

    # Editing the stored checkpoint instead to match is caught by its signature.
    await Checkpoint.update({Checkpoint.head_link: link, Checkpoint.merkle_root: merkle.root(await links_of(program.id))
                             }).where(Checkpoint.program_id == program.id).run()
    answer = await asyncio.to_thread(audit, program.id)
    assert answer.returncode == 1 and "does not carry a valid signature" in answer.stdout, answer.stdout


async def test_the_key_is_made_once_when_two_ask_at_the_same_time(client: Any, sealer: Sealer) -> None:
    from wallet.signing import program_key

    program = await new_program(client)
    keys_made = await asyncio.gather(*[program_key(program.id, sealer) for _ in range(4)])
    assert len({k.public.key for k in keys_made}) == 1
    assert await SigningKey.count().where(SigningKey.program_id == program.id).run() == 1


async def test_the_latest_checkpoint_is_read_from_the_end_of_an_index(migrated) -> None:  # type: ignore[no-untyped-def]
    """A program gains a checkpoint a day for good: its latest is one index step, not a sort of all."""
    from tests.query_plans import plan_of, sqlite_only
    from wallet.checkpoints import latest_query
    from wallet.tables import Checkpoint

    sqlite_only(Checkpoint)
    assert await plan_of(latest_query("prg_any")) == [
        "SEARCH chain_checkpoints USING INDEX chain_checkpoints_latest (program_id=?)"]
