"""1,000 spins through the real spin function (Lua, on Valkey) with known seeds: each outcome
is what anyone recomputes from the revealed seed and the recorded weights, each spin moves the
right points, and the outcomes fit the weights (chi-square). Seeds are fixed, so the test is
deterministic. That the choice itself is fair over 10,000 spins is a property of rw-fair-1,
checked on the pure function in test_fairness.py: spin for spin, Lua picks what it picks."""

from __future__ import annotations

import secrets

import msgspec
from cryptography.fernet import Fernet

from fulfillment.sealing import Sealer

from games.campaigns import runtime_config
from games.fairness import server_seed_hash, spin_segment
from games.spins import draw_spin
from games.wheel import WheelSpec
from games import keys as game_keys
from wallet.store import Leg, WalletStore
from kernel.idempotency import NO_IDEM

SERVER_SEED = "3f1b9f0d5a7e2c4b8a6d0e1f2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7"
CLIENT_SEED = "dealer-42"
WEIGHTS = [50, 30, 15, 5]
SPINS = 1_000
# Chi-square with 3 degrees of freedom: exceeded with probability 0.001 by a fair wheel.
CRITICAL_3DF_0_001 = 16.266


async def test_1000_spins_recompute_and_fit_the_weights(redis) -> None:  # type: ignore[no-untyped-def]
    store = WalletStore(redis)
    await store.load_functions()
    program, person, campaign = f"prg_{secrets.token_hex(4)}", "par_fair", "cmp_fair"
    spec = msgspec.convert({"name": "Fair", "cost_points": 1, "segments": [
        {"label": f"s{i}", "weight": w, "prize": {"type": "points", "points": i + 1}} for i, w in enumerate(WEIGHTS)]},
        WheelSpec)
    await redis.hset(game_keys.campaign(program, campaign), mapping=runtime_config(campaign, spec, "active", {}))
    await store.open_wallet(program, person)
    await store.transfer(program, "tx_seed_money", "grant", [Leg("acct:world", "w1:available", SPINS, "-")],
                         wallets=[person], participant_id=person)
    sealer = Sealer(Fernet.generate_key().decode())
    await redis.hset(game_keys.seed_pair(program, person), mapping={
        "pair": "pair_fair", "sealed": sealer.seal(SERVER_SEED), "hash": server_seed_hash(SERVER_SEED),
        "client_seed": CLIENT_SEED, "nonce": 0})

    counts = [0] * len(WEIGHTS)
    for nonce in range(SPINS):
        outcome = await draw_spin(store, sealer, program, "UTC", person, campaign, NO_IDEM)
        assert outcome.ok and outcome.nonce == nonce and outcome.weights == WEIGHTS
        assert outcome.segment_index == spin_segment(SERVER_SEED, CLIENT_SEED, nonce, outcome.weights)
        counts[outcome.segment_index] += 1

    total = sum(WEIGHTS)
    chi_square = sum((seen - SPINS * w / total) ** 2 / (SPINS * w / total) for seen, w in zip(counts, WEIGHTS))
    assert chi_square < CRITICAL_3DF_0_001, (counts, chi_square)
    # Money: every spin took 1 point and paid its segment's number (index + 1) in points.
    balance = await store.balance(program, person)
    assert balance is not None
    assert balance["available"] == SPINS - SPINS + sum((i + 1) * c for i, c in enumerate(counts))
