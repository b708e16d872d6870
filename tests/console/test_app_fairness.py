"""The app's JavaScript verifier (console/static/app/fair.js) agrees with FAIRNESS.md's
vectors and with the Python one, run in the real browser's WebCrypto."""

from __future__ import annotations

import random
from typing import Any

from games.fairness import ByteStream, floats, server_seed_hash, spin_segment

SEED = "3f1b9f0d5a7e2c4b8a6d0e1f2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7"
COMPAT_SEED = "18e93f4a7b5b58d2569765766d1b6c3296bbd8430d6f20249044d72f14720159"

RUN = """async (cases) => {
  const fair = await import('/app/static/fair.js');
  const out = {};
  out.floats = await fair.floats(cases.compat.seed, cases.compat.client, 1, 3);
  out.wheels = [];
  for (const n of [10, 20, 30, 40, 50]) {
    out.wheels.push(await fair.segmentOf(cases.compat.seed, cases.compat.client, 1, Array(n).fill(1)));
  }
  out.hash = await fair.sha256Hex(cases.seed);
  out.table = [];
  for (const row of cases.table) {
    out.table.push([await fair.floats(cases.seed, row.client, row.nonce, 1),
                    await fair.segmentOf(cases.seed, row.client, row.nonce, row.weights)]);
  }
  out.random = [];
  for (const row of cases.random) {
    out.random.push(await fair.segmentOf(row.seed, row.client, row.nonce, row.weights));
  }
  out.verified = await fair.verifySpin({server_seed: cases.seed, server_seed_hash: out.hash, client_seed: 'dealer-42',
                                        nonce: 0, weights: [50, 30, 15, 5], segment_index: 1});
  out.forged = await fair.verifySpin({server_seed: cases.seed, server_seed_hash: out.hash, client_seed: 'dealer-42',
                                      nonce: 0, weights: [50, 30, 15, 5], segment_index: 0});
  return out;
}"""


async def test_the_browser_verifier_matches_the_vectors_and_python(page: Any) -> None:
    await page.goto("/app/static/offline.html")
    rng = random.Random(16)
    randoms = [{"seed": "%064x" % rng.getrandbits(256), "client": f"c{rng.randrange(10**6)}",
                "nonce": rng.randrange(1000),
                # Large totals reach the rejection branch now and then.
                "weights": [rng.randrange(0, 2**30) for _ in range(rng.randrange(1, 6))] + [1]}
               for _ in range(60)]
    cases = {"compat": {"seed": COMPAT_SEED, "client": "bb62964774"}, "seed": SEED,
             "table": [{"client": "dealer-42", "nonce": 0, "weights": [50, 30, 15, 5]},
                       {"client": "dealer-42", "nonce": 2, "weights": [50, 30, 0, 5]}],
             "random": randoms}
    got = await page.evaluate(RUN, cases)

    assert got["floats"] == [0.7717409993056208, 0.8890905529260635, 0.308135983068496]
    assert got["wheels"] == [7, 15, 23, 30, 38]
    assert got["hash"] == "bb8d48dfa8730e78f272bb0a5705d8e09cf64fe9dfa7d44a2ee0e4f27ae4cbc2" == server_seed_hash(SEED)
    assert got["table"] == [[[0.5101342594716698], 1], [[0.27607720252126455], 0]]
    assert got["random"] == [spin_segment(r["seed"], r["client"], r["nonce"], r["weights"]) for r in randoms]
    assert floats(ByteStream(COMPAT_SEED, "bb62964774:1"), 3) == got["floats"]
    assert got["verified"]["ok"] is True
    assert got["forged"]["ok"] is False and got["forged"]["segment"] == 1
