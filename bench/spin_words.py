"""A spin's words, as the API computes them before its call (games/seed_cache.py fills 16
nonces' words of a participant at once): `spin_words` (a block at a time, hmac.digest and
struct) against reading the same words off `ByteStream` four bytes at a time, the
reference reader FAIRNESS.md describes. Both answer the same words (checked here first).

    .venv/bin/python bench/spin_words.py [--fills 3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from games.fairness import ByteStream, spin_prefix, spin_words  # noqa: E402
from games.seed_cache import PRECOMPUTED, WORDS_PER_NONCE  # noqa: E402

SERVER_SEED = "3f1b9f0d5a7e2c4b8a6d0e1f2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7"
CLIENT_SEED = "0123456789abcdef"


def by_block(start: int) -> list[int]:
    return [w for n in range(start, start + PRECOMPUTED) for w in spin_words(SERVER_SEED, CLIENT_SEED, n)]


def by_stream(start: int) -> list[int]:
    out: list[int] = []
    for n in range(start, start + PRECOMPUTED):
        stream = ByteStream(SERVER_SEED, spin_prefix(CLIENT_SEED, n))
        out += [stream.word() for _ in range(WORDS_PER_NONCE)]
    return out


def per_fill(fill: object, fills: int) -> float:
    best = float("inf")
    for _ in range(5):  # the best of five: the machine is shared
        started = time.perf_counter()
        for start in range(0, fills * PRECOMPUTED, PRECOMPUTED):
            fill(start)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - started) / fills)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills", type=int, default=3000)
    args = parser.parse_args()
    assert all(by_block(s) == by_stream(s) for s in range(0, 200, PRECOMPUTED)), "the two readers disagree"
    block, stream = per_fill(by_block, args.fills), per_fill(by_stream, args.fills)
    print(f"a fill of {PRECOMPUTED} nonces x {WORDS_PER_NONCE} words (best of 5 x {args.fills} fills):")
    print(f"  ByteStream, 4 bytes at a time  {stream * 1e6:8.1f} us  ({stream * 1e6 / PRECOMPUTED:.1f} us a spin)")
    print(f"  spin_words, a block at a time  {block * 1e6:8.1f} us  ({block * 1e6 / PRECOMPUTED:.1f} us a spin)")
    print(f"  spin_words / ByteStream = {block / stream:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
