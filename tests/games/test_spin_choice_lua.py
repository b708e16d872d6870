"""games/spin_choice.lua against games.fairness.choose_segment on a real Valkey server.

Lua computes in doubles (exact to 2^53) while w * n reaches 2^64, so the two are compared
on thousands of random cases aimed at the edges: totals near 2^32 and near 2^31 + 1 (where
about half the words are rejected), single segments, zero weights, words near 0 and 2^32 - 1.
"""

from __future__ import annotations

import random
from collections import Counter
from importlib import resources

import pytest
import redis

from games.fairness import choose_segment

CASES = 3_500
TWO_32 = 2**32
SOURCE = "\n".join((resources.files("games") / name).read_text() for name in ("spin_choice.lua", "spin_choice_eval.lua"))


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`parts` non-negative weights summing to `total`."""
    cuts = sorted(rng.randint(0, total) for _ in range(parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]


def random_weights(rng: random.Random) -> list[int]:
    parts = rng.choice([1, 1, 2, 3, 4, 6, 8, 12, 20, 64, 100])
    kind = rng.randrange(7)
    if kind == 0:
        total = rng.randint(TWO_32 - 1000, TWO_32)
    elif kind == 1:
        total = rng.randint(2**31 + 1, 2**31 + 1000)  # 2^32 mod n near n: rejections half the time
    elif kind == 2:
        total = rng.randint(3 * 2**30, 3 * 2**30 + 100)  # a quarter rejected
    elif kind == 3:
        total = rng.randint(1, 100)
    elif kind == 4:
        total = rng.randint(1, TWO_32)
    elif kind == 5:
        total = 0  # every segment out of stock
    else:
        return [rng.choice([0, 0, 1, rng.randint(0, 2**20)]) for _ in range(parts)]
    weights = split(total, parts, rng)
    for _ in range(rng.randint(0, parts // 2)):
        weights.insert(rng.randrange(len(weights) + 1), 0)  # out-of-stock segments anywhere
    return weights


def random_word(rng: random.Random) -> int:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randint(0, 16)
    if kind == 1:
        return rng.randint(TWO_32 - 17, TWO_32 - 1)
    if kind == 2:
        return rng.choice([2**31 - 1, 2**31, 2**31 + 1, 2**16 - 1, 2**16, 2**16 + 1, 2**32 // 3])
    return rng.randrange(TWO_32)


def python_answer(words: list[int], weights: list[int]) -> int:
    """choose_segment in the Lua script's terms: -1 ran out of words, -2 nothing to win."""
    if sum(weights) == 0:
        return -2
    index = choose_segment(words, weights)
    return -1 if index is None else index


def eval_all(valkey: redis.Redis, cases: list[tuple[list[int], list[int]]]) -> list[int]:
    script = valkey.register_script(SOURCE)
    pipe = valkey.pipeline(transaction=False)
    for words, weights in cases:
        script(keys=[], args=[len(words), *words, *weights], client=pipe)
    return [int(answer) for answer in pipe.execute()]


def test_lua_choice_equals_python_on_thousands_of_random_cases(valkey: redis.Redis) -> None:
    rng = random.Random(20260501)
    cases = [([random_word(rng) for _ in range(rng.choice([0, 1, 1, 2, 3, 8, 16]))], random_weights(rng))
             for _ in range(CASES)]
    lua = eval_all(valkey, cases)
    mismatches = [(case, got, python_answer(*case)) for case, got in zip(cases, lua) if got != python_answer(*case)]
    assert not mismatches, mismatches[:5]
    # The cases did reach every branch: answers, running out of words, nothing to win, and
    # an answer found only after a rejected word.
    outcomes = Counter("index" if answer >= 0 else answer for answer in lua)
    assert outcomes["index"] > 1000 and outcomes[-1] > 50 and outcomes[-2] > 50
    after_rejection = sum(1 for (words, weights), answer in zip(cases, lua)
                          if answer >= 0 and words and (words[0] * sum(weights)) % TWO_32 < TWO_32 % sum(weights))
    assert after_rejection > 50


def test_lua_choice_equals_python_on_every_boundary_word_and_total(valkey: redis.Redis) -> None:
    words = [0, 1, 2, 2**16 - 1, 2**16, 2**31 - 1, 2**31, 2**32 // 3, 2**32 - 2, 2**32 - 1]
    totals = [1, 2, 3, 2**16, 2**16 + 1, 2**31 - 1, 2**31, 2**31 + 1, 3 * 2**30, 2**32 - 1, 2**32]
    cases = [([w, 2**32 - 1 - w], [total]) for w in words for total in totals]
    cases += [([w], [total // 2, 0, total - total // 2]) for w in words for total in totals if total > 1]
    assert eval_all(valkey, cases) == [python_answer(*case) for case in cases]


@pytest.mark.parametrize("args", [
    ["1", "5", "4294967296", "1"],  # weights sum past 2^32
    ["1", "4294967296", "1"],  # word past 2^32 - 1
    ["1", "0x10", "1"],  # not decimal
    ["1", "-1", "1"],
    ["3", "1", "1"],  # fewer words than announced
    ["x"],
])
def test_lua_refuses_malformed_arguments(valkey: redis.Redis, args: list[str]) -> None:
    with pytest.raises(redis.ResponseError):
        valkey.eval(SOURCE, 0, *args)
