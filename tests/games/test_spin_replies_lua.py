"""What rw_spin (games/spins.lua) answers and journals, read on a real Valkey server.

rw_spin writes its reply and its journal entry's metadata by concatenation (`spin_texts`), and
falls back to the prelude's to_json when a number is not whole. Both ways must write the
same document: the API decodes the reply, the projector and reconcile the metadata, and a
replay answers the recorded text.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from games import keys as game_keys
from kernel import keys as kernel_keys
from kernel.lua_library import library
from wallet import keys

# rw_spin takes 8 words a nonce; any 32-bit words choose the only segment of these wheels.
WORDS = [123456789, 987654321, 5, 6, 7, 8, 9, 10]


@pytest.fixture(scope="module")
def lua(valkey: Any) -> Any:
    valkey.function_load(library().text, replace=True)
    return valkey


def spin_on(client: Any, segments: list[dict[str, Any]], wallet: dict[str, Any], cost: int = 10,
            seed: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any], list[Any], str]:
    """One spin of a fresh participant: the reply, the journal entry's fields, the call's
    arguments (to call it again) and the reply's text."""
    program, campaign, participant = "prg_t" + secrets.token_hex(5), "cmp_t", "pt_" + secrets.token_hex(4)
    client.hset(keys.accounts(program), "budget", 10**9)
    client.hset(keys.config(program), mapping={"overdraft": "1"})
    client.hset(game_keys.campaign(program, campaign),
                mapping={"status": "active", "starts_ms": "", "ends_ms": "", "cost": str(cost), "cap": "",
                         "segments": json.dumps(segments), "pool": ""})
    client.hset(keys.wallet(program, participant), mapping={"open": 1, **wallet})
    client.hset(game_keys.seed_pair(program, participant),
                mapping=seed or {"pair": "sp_t", "nonce": 4, "hash": "ab" * 32, "client_seed": 'a "quoted" seed'})
    key_list = [kernel_keys.idempotency(program, "pt:" + participant, secrets.token_hex(8)), keys.journal(program),
                keys.accounts(program), keys.config(program), keys.wallet(program, participant),
                game_keys.campaign(program, campaign), game_keys.seed_pair(program, participant),
                game_keys.spin_day(program, campaign, participant, "2026-12-06")]
    call = ["rw_spin", len(key_list), *key_list, "f" * 64, 172800, "spn_" + secrets.token_hex(8), participant,
            campaign, "sp_t", 4, 1765000000123, 8, 1, *WORDS]
    text = client.execute_command("FCALL", *call).decode()
    [(_, fields)] = client.xrange(keys.journal(program))
    return json.loads(text), {k.decode(): v.decode() for k, v in fields.items()}, call, text


def written_once(text: str) -> dict[str, Any]:
    """The document, each key written once (json.loads would keep the last of two)."""
    return json.loads(text, object_pairs_hook=lambda pairs: dict(pairs) if len({k for k, _ in pairs}) == len(pairs)
                      else pytest.fail(f"a key written twice in {text}"))


def test_a_points_prize_that_pays_owed_points_answers_and_journals_every_field(lua: Any) -> None:
    reply, entry, call, text = spin_on(lua, [{"w": 3, "type": "points", "points": 100}],
                                       {"available": 50, "held": 7, "owed": 30, "earned": 200, "spent": 40})
    # Written by concatenation (spin_texts, in its own order), not by to_json's walk of a table.
    assert text.startswith('{"ok":true,"tx":') and entry["meta"].startswith('{"campaign":"cmp_t","tokens":0,')
    assert written_once(text) == reply and written_once(entry["meta"]) == json.loads(entry["meta"])
    tx, participant = call[12], call[13]
    assert reply == {"ok": True, "tx": tx, "participant": participant, "points": -10 + 100 - 30,
                     "available": 50 - 10 + 100 - 30, "held": 7, "segment_index": 0, "weights": [3], "nonce": 4,
                     "pair": "sp_t", "server_seed_hash": "ab" * 32, "client_seed": 'a "quoted" seed',
                     "paid_with": "points", "prize_value": 100, "free_spins": 0, "at": 1765000000123,
                     "owed_paid": 30}
    assert json.loads(entry["meta"]) == {"campaign": "cmp_t", "segment_index": 0, "paid_with": "points",
                                         "pair": "sp_t", "tokens": 0, "nonce": 4, "server_seed_hash": "ab" * 32,
                                         "client_seed": 'a "quoted" seed', "weights": [3], "prize_value": 100,
                                         "owed_paid": 30}
    assert (entry["kind"], entry["points"], entry["earned"], entry["spent"]) == ("spin", "60", "100", "10")
    # The retry answers the recorded text, marked as a replay.
    again = json.loads(lua.execute_command("FCALL", *call))
    assert again == {**reply, "replayed": 1}


def test_the_reply_reads_the_same_when_a_number_is_not_whole(lua: Any) -> None:
    """A free-spin prize of 1.5 spins (no valid wheel has one) takes to_json's way: the same
    fields as the concatenated reply of a prize of 2, and a seed pair lacking its client
    seed reads false in both."""
    seed = {"pair": "sp_t", "nonce": 4, "hash": "cd" * 32}
    whole, whole_entry, _, _ = spin_on(lua, [{"w": 1, "type": "free_spin", "spins": 2}], {"available": 20}, seed=seed)
    half, half_entry, _, _ = spin_on(lua, [{"w": 1, "type": "free_spin", "spins": 1.5}], {"available": 20}, seed=seed)
    assert whole["free_spins"] == 2 and half["free_spins"] == 1.5
    assert whole["client_seed"] is False and half["client_seed"] is False
    differ = {"tx", "participant", "free_spins"}
    assert {k: v for k, v in whole.items() if k not in differ} == {k: v for k, v in half.items() if k not in differ}
    whole_meta, half_meta = json.loads(whole_entry["meta"]), json.loads(half_entry["meta"])
    assert (whole_meta.pop("tokens"), half_meta.pop("tokens")) == (2, 1.5)
    assert whole_meta == half_meta
    assert "owed_paid" not in whole and "owed_paid" not in whole_meta


def test_a_balance_past_the_digits_cjson_keeps_is_written_whole(lua: Any) -> None:
    big = 2**53 - 1000
    reply, _, _, _ = spin_on(lua, [{"w": 1, "type": "nothing"}], {"available": big, "held": 10**15}, cost=10)
    assert (reply["available"], reply["held"], reply["points"]) == (big - 10, 10**15, -10)
    assert reply["at"] == 1765000000123


def test_every_segment_s_weight_is_written_in_order_a_zero_included(lua: Any) -> None:
    wheel = [{"w": 0, "type": "points", "points": 5}, {"w": 3, "type": "nothing"}, {"w": 5, "type": "nothing"},
             {"w": 2**31, "type": "nothing"}]
    reply, entry, _, text = spin_on(lua, wheel, {"available": 20})
    assert reply["weights"] == json.loads(entry["meta"])["weights"] == [0, 3, 5, 2**31]
    assert '"weights":[0,3,5,2147483648]' in text
    assert reply["segment_index"] in (1, 2, 3) and reply["prize_value"] == 0
