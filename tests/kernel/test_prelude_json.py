"""The prelude's `to_json` (kernel/prelude.lua) hands a value to cjson in one call when cjson
writes it as the field-by-field writer would, and keeps that writer for the rest (integers
past cjson's 14 digits, non-sequence tables): every function's reply, idempotency record
and journal entry goes through it. Run on a real Valkey (EVAL of the prelude) against
values hypothesis draws, byte for byte, and against Python's reading of the same JSON."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PRELUDE = (resources.files("kernel") / "prelude.lua").read_text()
SCRIPT = PRELUDE + """
local v = cjson.decode(ARGV[1])
return {to_json(v), to_json_each(v)}
"""
LARGEST = 2**53 - 1

integers = st.one_of(st.integers(-10**6, 10**6), st.integers(-LARGEST, LARGEST),
                     st.sampled_from([10**14 - 1, 10**14, -10**14, LARGEST, -LARGEST, 0]))
scalars = st.one_of(integers, st.booleans(), st.none(), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, min_size=1, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)


def written(valkey: redis.Redis, value: Any) -> tuple[bytes, bytes]:
    fast, each = valkey.eval(SCRIPT, 0, json.dumps(value))
    return fast, each


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.dictionaries(st.text(max_size=6), values, max_size=6), st.lists(values, min_size=1, max_size=5)))
def test_to_json_writes_what_the_field_by_field_writer_writes(valkey: redis.Redis, value: Any) -> None:
    fast, each = written(valkey, value)
    assert fast == each
    assert json.loads(fast) == value


def test_large_integers_stay_exact_where_cjson_alone_would_round_them(valkey: redis.Redis) -> None:
    value = {"available": LARGEST, "legs": [["budget", "available:pt_1", 10**14 + 7]], "ok": True}
    fast, _ = written(valkey, value)
    assert json.loads(fast) == value
    assert b"9007199254740991" in fast and b"e+" not in fast


def test_negative_zero_and_a_table_with_holes_are_written_as_the_field_by_field_writer_writes(
        valkey: redis.Redis) -> None:
    fast, each = valkey.eval(SCRIPT, 0, '{"a":-0,"b":[-0]}')
    assert fast == each and b"-0" not in fast
    holes = PRELUDE + "\nlocal t = {1, nil, 3}\nt[0.5] = 2\nreturn {to_json(t), to_json_each(t)}"
    fast, each = valkey.eval(holes, 0)
    assert fast == each


LEGS_SCRIPT = PRELUDE + """
local legs = cjson.decode(ARGV[1])
return {legs_json(legs), to_json_each(legs)}
"""
legs = st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30),
                          st.one_of(st.integers(0, 10**12), st.integers(0, LARGEST), st.sampled_from([10**14 - 1, 10**14]))),
                min_size=1, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moved=legs)
def test_a_journal_entrys_legs_are_written_as_the_field_by_field_writer_writes(valkey: redis.Redis,
                                                                              moved: list[tuple[str, str, int]]) -> None:
    fast, each = valkey.eval(LEGS_SCRIPT, 0, json.dumps(moved))
    assert fast == each
    assert [tuple(leg) for leg in json.loads(fast)] == moved


def test_legs_that_are_not_two_names_and_points_fall_back_to_the_field_by_field_writer(valkey: redis.Redis) -> None:
    odd = PRELUDE + '\nlocal legs = {{"budget", "available:pt_1", -0}, {"a", 7, 1}, {"a", "b", 1, "c"}}\n' \
        "return {legs_json(legs), to_json_each(legs)}"
    fast, each = valkey.eval(odd, 0)
    assert fast == each == b'[["budget","available:pt_1",0],["a",7,1],["a","b",1,"c"]]'


ONE_LEG_SCRIPT = PRELUDE + """
local points = cjson.decode(ARGV[3])
return {one_leg_digits(ARGV[1], ARGV[2], int_s(points)), to_json_each({{ARGV[1], ARGV[2], points}})}
"""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.text(max_size=30), target=st.text(max_size=30), points=integers)
def test_a_single_leg_is_written_as_the_field_by_field_writer_writes(valkey: redis.Redis, source: str, target: str,
                                                                      points: int) -> None:
    fast, each = valkey.eval(ONE_LEG_SCRIPT, 0, source, target, json.dumps(points))
    assert fast == each
    assert json.loads(fast) == [[source, target, points]]


BALANCE_SCRIPT = PRELUDE + """
local n = cjson.decode(ARGV[3])
local table_form = {ok = true, tx = ARGV[1], participant = ARGV[2], points = n[1], available = n[2], held = n[3]}
return {balance_json(ARGV[1], ARGV[2], n[1], n[2], n[3]), to_json_each(table_form)}
"""


def balance_texts(valkey: redis.Redis, tx: str, participant: str, numbers: str) -> tuple[bytes, bytes]:
    fast, each = valkey.eval(BALANCE_SCRIPT, 0, tx, participant, numbers)
    return fast, each


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tx=st.text(max_size=24), participant=st.text(max_size=24), points=integers, available=integers, held=integers)
def test_a_balance_reply_says_what_the_field_by_field_writer_says(valkey: redis.Redis, tx: str, participant: str,
                                                                  points: int, available: int, held: int) -> None:
    fast, each = balance_texts(valkey, tx, participant, json.dumps([points, available, held]))
    assert json.loads(fast) == json.loads(each) == {"ok": True, "tx": tx, "participant": participant,
                                                    "points": points, "available": available, "held": held}
    # Every number written out digit for digit as the field-by-field writer writes it
    for name, number in (("points", points), ("available", available), ("held", held)):
        for text in (fast, each):
            assert re.search(rf'"{name}":{number}[,}}]'.encode(), text), (name, number, text)


def test_a_balance_reply_of_odd_numbers_takes_the_field_by_field_writer(valkey: redis.Redis) -> None:
    fast, each = balance_texts(valkey, "tx_1", "pt_1", "[1, 2.5, 0]")
    assert fast == each and json.loads(fast)["available"] == 2.5
    fast, _ = balance_texts(valkey, "tx_1", "pt_1", "[1, -0, 0]")
    assert json.loads(fast)["available"] == 0 and b"-0" not in fast
