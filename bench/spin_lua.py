"""Where a spin's time inside Valkey goes (issue #13; games/spins.lua `rw_spin`).

A spin is one FCALL, and Valkey runs one command at a time: under `bench/games.py` its
FCALL was the largest part of Valkey's time, and Valkey shares the machine's two cores
with the API. This measures `rw_spin` alone, on an embedded Valkey of its own (AOF,
`appendfsync always`, as the API runs it), from Valkey's own figures (INFO commandstats:
microseconds of Valkey's time a call, the commands the function runs included):

- `least Lua`: bench/wallet.py's `rwbench_least` (check an idempotency key, HINCRBY, XADD,
  SET), the floor a function of this shape can reach, called with a grant's keys and
  arguments: the baseline of the ratio;
- `rw_spin`: the library as the API loads it, each call the first spin of a fresh
  participant (so every call takes the whole path: the reads, the weights, the choice,
  the payment, the journal entry, the record), on bench/games.py's wheel;
- with `--cuts`: the same library returning at each step of rw_spin, to show what each
  step costs (the difference between one cut and the next).

Calls go in pipelines of 200, after a warm-up of 300 that is not counted.

    .venv/bin/python bench/spin_lua.py [--calls 3000] [--cuts]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
# First, before bench/ itself: bench/games.py would stand in for the games package.
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.wallet import LEAST_LUA, on_a_fresh_valkey  # noqa: E402
from games import keys as game_keys  # noqa: E402
from kernel import keys as kernel_keys  # noqa: E402
from kernel.lua_library import library  # noqa: E402
from wallet import keys  # noqa: E402

WARM = 300
PIPELINE = 200
# bench/games.py's wheel, as rw_spin reads it from the campaign hash.
SEGMENTS = [{"w": 30, "type": "points", "points": 100}, {"w": 10, "type": "free_spin"}, {"w": 60, "type": "nothing"}]
# (name, a line of games/spins.lua, whether the early return goes after it): each cut
# returns at that point, so its time is what rw_spin spends up to there.
CUTS = [
    ("reads: the record, wallet, config, campaign, day, seed pair, accounts", "  local function entries(k)\n", False),
    ("the weights", "  local words = {}\n", True),
    ("the choice", "  -- Every balance the spin moves stays within bounds", False),
    ("the bounds and the payment", '  redis.call("HINCRBY", seed, "nonce", 1)\n', False),
    ("the nonce and the day's count", "  -- Everything the spin's SQL record needs", False),
    ("the journal entry's metadata and the reply",
     '  journal(stream, tx, "spin", participant, net, cid, meta, legs, argv[8], earned, spent)\n', False),
    ("the journal entry", "  reply = idem_record(idem, fp, ttl, reply)\n", False),
    ("the record", "  -- A points prize scores the boards the caller passed", False),
]


def cut(text: str, marker: str, after: bool, source: str = "games/spins.lua") -> str:
    """The library `text` returning early at `marker` (before it, or `after`): a cut of a
    function, to time the steps up to there."""
    if text.count(marker) != 1:
        raise SystemExit(f"{source} changed: {marker.strip()!r} is not found once; update CUTS")
    early = "  do return 'cut' end\n"
    return text.replace(marker, marker + early if after else early + marker)


def valkey_time(client: redis.Redis, commands: list[tuple[Any, ...]]) -> tuple[float, list[Any]]:
    """Microseconds of Valkey's time an FCALL over `commands` (after the warm-up), and the
    last replies."""
    pipe = client.pipeline(transaction=False)
    for command in commands[:WARM]:
        pipe.execute_command("FCALL", *command)
    pipe.execute()
    client.config_resetstat()
    replies: list[Any] = []
    for start in range(WARM, len(commands), PIPELINE):
        pipe = client.pipeline(transaction=False)
        for command in commands[start:start + PIPELINE]:
            pipe.execute_command("FCALL", *command)
        replies = pipe.execute()
    stats = client.info("commandstats")["cmdstat_fcall"]
    return float(stats["usec_per_call"]), replies


def spins(client: redis.Redis, program: str, campaign: str, tag: str, n: int, rng: random.Random) -> list[tuple[Any, ...]]:
    """`n` first spins, each of a new participant with points and a seed pair at nonce 0."""
    pipe = client.pipeline(transaction=False)
    commands = []
    for i in range(n):
        participant = f"pt_{tag}_{i}"
        pipe.hset(keys.wallet(program, participant), mapping={"open": 1, "inactive": 0, "available": 10**6})
        pipe.hset(game_keys.seed_pair(program, participant),
                  mapping={"pair": "sp_bench", "nonce": 0, "hash": "ab" * 32, "client_seed": "bench", "sealed": "x"})
        key_list = [kernel_keys.idempotency(program, "pt:" + participant, secrets.token_hex(8)), keys.journal(program),
                    keys.accounts(program), keys.config(program), keys.wallet(program, participant),
                    game_keys.campaign(program, campaign), game_keys.seed_pair(program, participant),
                    game_keys.spin_day(program, campaign, participant, "2026-12-05")]
        # The words are any 32-bit numbers here: rw_spin uses them, Python derives them.
        args = ["f" * 64, 172800, "spn_" + secrets.token_hex(8), participant, campaign, "sp_bench", 0,
                int(time.time() * 1000), 8, 1, *[rng.getrandbits(32) for _ in range(8)]]
        commands.append(("rw_spin", len(key_list), *key_list, *args))
    pipe.execute()
    return commands


def least_calls(program: str, n: int) -> list[tuple[Any, ...]]:
    wallet, stream = keys.wallet(program, "pt_least"), f"{kernel_keys.tag(program)}:bench-journal"
    return [("rwbench_least", 5, kernel_keys.idempotency(program, "admin", secrets.token_hex(8)), stream,
             keys.accounts(program), keys.config(program), wallet, "f" * 64, 172800, "tx_" + secrets.token_hex(8),
             "pt_least", 1, "grant", "", '{"reason":"bench"}', int(time.time() * 1000)) for _ in range(n)]


def run(args: argparse.Namespace, valkey: Any) -> int:
    client = redis.Redis.from_url(valkey.url)
    program, campaign = "prg_bench" + secrets.token_hex(6), "cmp_bench"
    client.hset(keys.accounts(program), "budget", 10**12)
    client.hset(keys.config(program), mapping={"overdraft": "1"})
    client.hset(game_keys.campaign(program, campaign),
                mapping={"status": "active", "starts_ms": "", "ends_ms": "", "cost": "10", "cap": "",
                         "segments": json.dumps(SEGMENTS), "pool": ""})
    text = library().text
    rng = random.Random(1)
    spin = against_least(client, valkey, "rw_spin", program, args.calls, text,
                         lambda: spins(client, program, campaign, "full", args.calls, rng))
    if args.cuts:
        print("  rw_spin up to each step (the step's cost: the difference from the line above):")
        time_cuts(client, text, CUTS, "games/spins.lua",
                  lambda index: spins(client, program, campaign, f"cut{index}", args.calls, rng),
                  spin, "the leaderboards a points prize moves, the reply out")
    client.close()
    return 0


def against_least(client: redis.Redis, valkey: Any, function: str, program: str, n: int, text: str,
                  calls: Callable[[], list[tuple[Any, ...]]]) -> float:
    """Times the least Lua, then `function` (the library `text`, over `calls()`), and prints
    both and their ratio; answers the function's time. A refused last call stops the script."""
    client.function_load(LEAST_LUA, replace=True)
    print(f"{function} in Valkey {client.info('server')['valkey_version']} (AOF, appendfsync always; malloc "
          f"{valkey.allocator}): microseconds of Valkey's time a call, {n - WARM} calls in pipelines of {PIPELINE}")
    least, _ = valkey_time(client, least_calls(program, n))
    client.function_load(text, replace=True)
    whole, replies = valkey_time(client, calls())
    answered = json.loads(replies[-1])
    if not answered.get("ok"):
        raise SystemExit(f"{function} refused the bench's call: {answered}")
    print(f"  least Lua (the baseline)  {least:7.1f} us")
    print(f"  {function:<24}{whole:7.1f} us   least Lua / {function} = {least / whole:.2f}")
    return whole


def time_cuts(client: redis.Redis, text: str, cuts: list[tuple[str, str, bool]], source: str,
              calls: Callable[[int], list[tuple[Any, ...]]], whole: float, last: str) -> None:
    """Prints the function's time up to each cut (the library `text` returning there; `calls(i)`:
    the calls of cut i), each step's cost the difference from the line before, then `whole`, the
    step after the last cut named `last`; loads `text` back."""
    previous = 0.0
    for index, (name, marker, after) in enumerate(cuts):
        client.function_load(cut(text, marker, after, source), replace=True)
        upto, _ = valkey_time(client, calls(index))
        print(f"    {upto:7.1f} us  (+{upto - previous:6.1f})  {name}")
        previous = upto
    print(f"    {whole:7.1f} us  (+{whole - previous:6.1f})  {last}")
    client.function_load(text, replace=True)


def lua_main(doc: str, function: str, prefix: str, run_with: Callable[[argparse.Namespace, Any], int]) -> int:
    """The command line of a function's timing (this script's and bench/pool_lua.py's)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="calls per measurement (the first 300 warm up)")
    parser.add_argument("--cuts", action="store_true", help=f"also time {function} up to each of its steps")
    args = parser.parse_args()
    if not 1000 <= args.calls <= 100_000:
        parser.error("--calls: 1,000 to 100,000")
    return on_a_fresh_valkey(prefix, lambda procs, folder, valkey: run_with(args, valkey))


def main() -> int:
    return lua_main(__doc__, "rw_spin", "rw-bench-spin-lua-", run)


if __name__ == "__main__":
    sys.exit(main())
