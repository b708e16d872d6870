"""What opening and sealing a secret costs (fulfillment/sealing.py), against Fernet, in one run.

A code-pool redemption opens its card's sealed credentials to answer them, and an upload seals
every code it takes. This build seals with AES-256-GCM-SIV (`s2.` tokens) and still opens the
Fernet tokens earlier builds wrote. For gift-card-shaped credentials (a code, a PIN, a URL),
alternated over `--rounds`:

- `s2`: `Sealer.open` / `Sealer.seal` of this build's tokens;
- `fernet` (the baseline): `Sealer.open` of a Fernet token, and `Fernet.encrypt` as the earlier
  builds sealed.

Prints microseconds of CPU a call and each way's ratio to the baseline.

    .venv/bin/python bench/sealing.py [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from fulfillment.sealing import Sealer  # noqa: E402


def cpu_us(calls: int, action: Callable[[int], object]) -> float:
    start = time.process_time()
    for i in range(calls):
        action(i)
    return (time.process_time() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = Fernet.generate_key().decode()
    sealer, fernet = Sealer(key), Fernet(key.encode())
    values = [{"code": f"GIFT-{n:04d}-ABCD-EFGH", "pin": f"{n % 10_000:04d}",
               "url": f"https://cards.example/redeem/{n}"} for n in range(args.calls)]
    s2 = [sealer.seal(v) for v in values]
    old = [fernet.encrypt(msgspec.json.encode(v)).decode() for v in values]
    if [sealer.open(t) for t in s2[:100]] != values[:100] or [sealer.open(t) for t in old[:100]] != values[:100]:
        print("a token did not open to its value")
        return 1
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        runs.setdefault("open s2", []).append(cpu_us(args.calls, lambda i: sealer.open(s2[i])))
        runs.setdefault("open fernet", []).append(cpu_us(args.calls, lambda i: sealer.open(old[i])))
        runs.setdefault("seal s2", []).append(cpu_us(args.calls, lambda i: sealer.seal(values[i])))
        runs.setdefault("seal fernet", []).append(cpu_us(args.calls, lambda i: fernet.encrypt(msgspec.json.encode(values[i]))))
    print(f"sealing, {args.calls} gift-card credentials a measurement, {args.rounds} rounds alternated "
          "(CPU us a call, each round)")
    for name, figures in runs.items():
        print(f"  {name:<12} {statistics.median(figures):7.1f} us   ({', '.join(f'{f:.1f}' for f in figures)})")
    for what in ("open", "seal"):
        ratio = statistics.median(runs[f"{what} fernet"]) / statistics.median(runs[f"{what} s2"])
        print(f"  {what}: s2 is {ratio:.0f} x cheaper than Fernet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
