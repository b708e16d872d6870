"""A large sweepstakes draw, in one process: 1,000,000 entrants holding 10,000,000 tickets.

Times each step the server and a verifier go through (build the canonical entries file,
hash it, parse it back, draw winners and alternates, verify the whole proof) and prints the process's peak RSS
after each (peak so far, from getrusage). Targets: the draw well under 10 s and the whole
run under 1 GB.

    .venv/bin/python bench/fairness_draw.py [--entrants 1000000] [--tickets 10000000]
                                            [--winners 10] [--alternates 10]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from games.fairness import (  # noqa: E402
    draw, entries_file, entries_hash, parse_entries_file, server_seed_hash, verify_sweepstakes_proof)

T = TypeVar("T")
SERVER_SEED = "7" * 64
BEACON = "drand-quicknet-round-9999999:bench"
# A prime above any entrant count used here: i -> i * 7919 mod P is one-to-one, so the ids
# are unique and arrive out of order (the file must sort them).
P = 10_000_019


def entrants(count: int, tickets: int) -> list[tuple[str, int]]:
    """Deterministic entrants: 1..19 tickets each in a cycle, the rest to the first one."""
    rows = [(f"p-{(i * 7919) % P:08d}", 1 + i % 19) for i in range(count)]
    held = sum(t for _, t in rows)
    if held > tickets:
        raise SystemExit(f"{count} entrants hold at least {held} tickets; ask for more tickets")
    rows[0] = (rows[0][0], rows[0][1] + tickets - held)
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(label: str, step: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = step()
    print(f"{label:<28} {time.perf_counter() - start:8.3f} s   peak RSS {peak_rss_mb():8.1f} MB", flush=True)
    return result


def draw_arguments(description: str | None) -> argparse.Namespace:
    """The size of a sweepstakes draw to measure: entrants, tickets, winners and alternates."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entrants", type=int, default=1_000_000)
    parser.add_argument("--tickets", type=int, default=10_000_000)
    parser.add_argument("--winners", type=int, default=10)
    parser.add_argument("--alternates", type=int, default=10)
    return parser.parse_args()


def main() -> None:
    args = draw_arguments(__doc__)

    print(f"{args.entrants:,} entrants, {args.tickets:,} tickets, "
          f"{args.winners} winners + {args.alternates} alternates")
    rows = timed("generate entrants", lambda: entrants(args.entrants, args.tickets))
    data = timed("build entries file", partial(entries_file, rows))
    del rows
    digest = timed("hash entries file", lambda: entries_hash(data))
    parsed = timed("parse entries file", lambda: parse_entries_file(data))
    picks = args.winners + args.alternates
    chosen = timed("draw", partial(draw, SERVER_SEED, digest, BEACON, parsed, picks))
    assert sum(t for _, t in parsed) == args.tickets and len(parsed) == args.entrants
    proof = {"algorithm": "rw-fair-1", "sweepstakes_id": "bench", "server_seed_hash": server_seed_hash(SERVER_SEED),
             "committed_at": "2026-05-01T00:00:00Z", "server_seed": SERVER_SEED, "entries_hash": digest,
             "total_tickets": args.tickets, "entrants": args.entrants,
             "beacon": {"source": "bench", "round": 1, "value": BEACON},
             "winners": chosen[:args.winners], "alternates": chosen[args.winners:]}
    del parsed
    result = timed("verify (hash, parse, draw)", lambda: verify_sweepstakes_proof(proof, data))
    assert result.ok, result.problems
    print(f"file {len(data) / 1e6:.1f} MB, entries_hash {digest}")
    print(f"winners    {chosen[:args.winners]}")
    print(f"alternates {chosen[args.winners:]}")
    assert len(set(chosen)) == len(chosen) == picks


if __name__ == "__main__":
    main()
