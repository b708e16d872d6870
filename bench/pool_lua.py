"""Where a code-pool redemption's time inside Valkey goes (issue #13; fulfillment/pool.lua
`rw_pool_redeem`).

A redemption is one FCALL. Under `bench/redemptions.py` Valkey's commandstats gave it about
137 us a call (the gate included, both cores busy, so Valkey's thread waited for a CPU inside
calls too), and Valkey 170-210 us of CPU a redemption: this measures `rw_pool_redeem` alone,
on an embedded Valkey of its own (AOF, `appendfsync always`, as the API runs it), from
Valkey's own figures (INFO commandstats: microseconds of Valkey's time a call, the commands
the function runs included):

- `least Lua`: bench/wallet.py's `rwbench_least` (check an idempotency key, HINCRBY, XADD,
  SET), the floor a function of this shape can reach: the baseline of the ratio;
- `rw_pool_redeem`: the library as the API loads it, each call a participant's redemption
  as the API makes it (its own order id, Idempotency-Key, hold, the tax counter judged from
  Redis, the catalog guard), round robin over participants with points;
- with `--cuts`: the same library returning at each step, to show what each step costs.

Calls go in pipelines of 200, after a warm-up of 300 that is not counted.

    .venv/bin/python bench/pool_lua.py [--calls 3000] [--cuts]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import redis  # noqa: E402

from bench.spin_lua import against_least, lua_main, time_cuts  # noqa: E402
from fulfillment import keys as pool_keys  # noqa: E402
from kernel import keys as kernel_keys  # noqa: E402
from kernel.lua_library import library  # noqa: E402
from wallet import keys  # noqa: E402

PARTICIPANTS = 256
CUTS = [
    ("the record, guard, order and wallet checks", '  if redis.call("ZCARD", free) == 0 then return pool_empty(loaded) end\n', False),
    ("stock, suspension, hold, balance checks", "  early = tax_refusal(cfg, keys, argv, 11, 11)\n", False),
    ("the tax refusal", "  local code = pool_take(free, taken, orders, order)\n  if not code then return pool_empty(loaded) end\n  tax_count", False),
    ("the code taken", "  tax_count(cfg, keys, argv, 11, 11)\n  local tx", False),
    ("the tax count", '    hincrby(wallet, "available", -points)\n    hincrby(wallet, "spent", points)\n    hincrby(acct, "redeemed"', False),
    ("the balances moved and the hold", '    -- One entry, available -> redeemed', False),
    ("the redemption's journal entry", "  return idem_store(idem, fp, ttl, {ok = true, order = order, code_id = code", False),
]


def redemptions(program: str, item: str, version: str, n: int) -> list[tuple[Any, ...]]:
    """`n` redemptions as the API calls rw_pool_redeem, round robin over the participants."""
    commands = []
    for i in range(n):
        participant = f"pt_{i % PARTICIPANTS}"
        order = "ord_" + secrets.token_hex(10)
        carried = {"reason": "redemption", "order": {"item": item, "partner": "ptn_bench", "source": "redemption",
                                                     "face_value": 500, "currency": "USD",
                                                     "created_ms": int(time.time() * 1000), "tax_flagged": False}}
        key_list = [kernel_keys.idempotency(program, "pt:" + participant, secrets.token_hex(8)), keys.journal(program),
                    keys.accounts(program), keys.config(program), keys.wallet(program, participant),
                    keys.hold(program, order), *pool_keys.pool_keys(program, item),
                    pool_keys.tax_counted(program, participant, 2026), pool_keys.tax_early(program, participant, 2026),
                    kernel_keys.idempotency(program, "pt:" + participant, "pin"), f"{kernel_keys.tag(program)}:catalog"]
        args = ["f" * 64, 172800, order, participant, 500, "tx_" + secrets.token_hex(8), "tx_" + secrets.token_hex(8),
                msgspec.json.encode({"reason": f"redemption {order}"}).decode(),
                msgspec.json.encode(carried).decode(), int(time.time() * 1000),
                500, "", 40_000_000, "America/New_York", 60_000, version]
        commands.append(("rw_pool_redeem", len(key_list), *key_list, *args))
    return commands


def prepare(client: redis.Redis, program: str, item: str, codes: int) -> None:
    pipe = client.pipeline(transaction=False)
    for p in range(PARTICIPANTS):
        participant = f"pt_{p}"
        pipe.hset(keys.wallet(program, participant), mapping={"open": 1, "inactive": 0, "available": 10**12})
        pipe.set(pool_keys.tax_counted(program, participant, 2026), "0|America/New_York|0")
    for start in range(0, codes, 1000):
        pipe.zadd(pool_keys.pool_free(program, item),
                  {f"cod_{n:09d}": n for n in range(start, min(codes, start + 1000))})
    pipe.set(pool_keys.pool_loaded(program, item), "1")
    pipe.execute()


def run(args: argparse.Namespace, valkey: Any) -> int:
    client = redis.Redis.from_url(valkey.url)
    program, item = "prg_bench" + secrets.token_hex(6), "itm_bench"
    client.hset(keys.accounts(program), "budget", 10**12)
    client.hset(keys.config(program), mapping={"overdraft": "1"})
    version = "7"
    client.set(f"{kernel_keys.tag(program)}:catalog", version)
    rounds = 2 + (len(CUTS) if args.cuts else 0)
    prepare(client, program, item, args.calls * rounds + 1000)
    text = library().text
    whole = against_least(client, valkey, "rw_pool_redeem", program, args.calls, text,
                          lambda: redemptions(program, item, version, args.calls))
    if args.cuts:
        print("  rw_pool_redeem up to each step (the step's cost: the difference from the line above):")
        time_cuts(client, text, CUTS, "fulfillment/pool.lua",
                  lambda index: redemptions(program, item, version, args.calls), whole, "the record and the reply")
    client.close()
    return 0


def main() -> int:
    return lua_main(__doc__, "rw_pool_redeem", "rw-bench-pool-lua-", run)


if __name__ == "__main__":
    sys.exit(main())
