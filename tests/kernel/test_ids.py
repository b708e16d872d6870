"""Ids sort by the moment they were made and carry no guessable part."""

from __future__ import annotations

import re
import time

from kernel.ids import ID_MAX, new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
SHAPE = re.compile(r"^ord_[0-9a-hjkmnp-tv-z]{26}$")  # Crockford base32: no i, l, o, u


def _millis(made: str) -> int:
    value = 0
    for digit in made.split("_", 1)[1][:10]:
        value = value * 32 + CROCKFORD.index(digit)
    return value


def test_an_id_is_a_prefix_and_26_crockford_digits() -> None:
    made = [new_id("ord") for _ in range(2000)]
    assert all(SHAPE.match(m) for m in made), [m for m in made if not SHAPE.match(m)][:3]
    assert all(len(m) <= ID_MAX for m in made)
    assert len(set(made)) == len(made)  # 80 random bits: no two alike


def test_its_first_ten_digits_are_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id("tx")
    after = time.time_ns() // 1_000_000
    assert before <= _millis(made) <= after


def test_ids_made_later_sort_after() -> None:
    first = new_id("ord")
    time.sleep(0.002)
    later = [new_id("ord") for _ in range(50)]
    assert all(first < other for other in later)


def test_the_random_part_uses_every_digit() -> None:
    tails = "".join(new_id("x")[-16:] for _ in range(500))
    assert set(tails) == set("0123456789abcdefghjkmnpqrstvwxyz")


def test_the_random_part_is_the_80_bits_in_base32(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Sixteen digits, most significant first, zero-padded: the same text a digit-at-a-time
    encoding gives, for values at the edges and between."""
    import kernel.ids as ids

    for value in (0, 1, 31, 32, 1023, 1024, 2**40 + 5, 2**79, 2**80 - 1, 0x1234_5678_9ABC_DEF0_1234):
        monkeypatch.setattr(ids, "_random80", lambda v=value: v)
        digits, expected = new_id("t")[-16:], value
        decoded = 0
        for digit in digits:
            decoded = decoded * 32 + CROCKFORD.index(digit)
        assert decoded == expected, (value, digits)


def test_threads_and_a_forked_child_never_make_the_same_id(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The random bits are drawn from the OS in blocks: no two threads take the same bytes,
    and a forked child does not go on with its parent's block."""
    import os
    import threading

    import kernel.ids as ids

    made: list[list[str]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda mine=mine: mine.extend(new_id("t") for _ in range(5_000)))
               for mine in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [m for mine in made for m in mine]
    assert len(set(every)) == len(every) == 20_000
    # The parent holds a whole unused block when it forks.
    monkeypatch.setattr(ids, "_random", os.urandom(ids._RANDOM_BYTES))
    monkeypatch.setattr(ids, "_taken", 0)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child: never back into pytest, whatever happens)
        try:
            os.write(write, "\n".join(new_id("t")[-16:] for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 30
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        assert time.monotonic() < deadline, "the forked child did not end"
        time.sleep(0.01)
    with os.fdopen(read) as pipe:
        childs = set(pipe.read().split("\n"))
    parents = {new_id("t")[-16:] for _ in range(100)}
    assert len(childs) == 100 and not childs & parents
