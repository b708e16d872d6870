"""`reward-wallet verify` recomputes published proofs offline and exits 0 only if they hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from games.fairness import draw, entries_file, entries_hash, parse_entries_file, server_seed_hash, spin_segment

REWARD_WALLET = str(Path(sys.executable).parent / "reward-wallet")
SEED = "3f1b9f0d5a7e2c4b8a6d0e1f2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7"


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REWARD_WALLET, "verify", *args], capture_output=True, text=True, timeout=60, env={})


def test_a_revealed_spin_proof_verifies_and_a_tampered_one_does_not(tmp_path: Path) -> None:
    proof = {"algorithm": "rw-fair-1", "server_seed_hash": server_seed_hash(SEED), "client_seed": "dealer-42",
             "nonce": 0, "weights": [50, 30, 15, 5], "segment_index": spin_segment(SEED, "dealer-42", 0, [50, 30, 15, 5]),
             "server_seed": SEED}
    good = tmp_path / "spin.json"
    good.write_text(json.dumps(proof))
    assert verify("spin", str(good)).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**proof, "segment_index": 3}))
    result = verify("spin", str(bad))
    assert result.returncode == 1 and "segment_index" in result.stdout
    unrevealed = tmp_path / "unrevealed.json"
    unrevealed.write_text(json.dumps({k: v for k, v in proof.items() if k != "server_seed"}))
    assert verify("spin", str(unrevealed)).returncode == 1
    assert verify("spin", str(tmp_path / "missing.json")).returncode == 2


def test_a_sweepstakes_proof_verifies_with_its_entries_file(tmp_path: Path) -> None:
    file_bytes = entries_file([("p-0001", 1), ("p-0002", 10), ("p-0003", 5), ("p-0005", 2)])
    digest = entries_hash(file_bytes)
    seed = "9" * 64
    picks = draw(seed, digest, "drand-quicknet-round-1234:abcdef", parse_entries_file(file_bytes), 3)
    proof = {"algorithm": "rw-fair-1", "sweepstakes_id": "swp_1", "server_seed_hash": server_seed_hash(seed),
             "committed_at": "2026-11-01T00:00:00+00:00", "server_seed": seed, "entries_hash": digest,
             "total_tickets": 18, "entrants": 4,
             "beacon": {"source": "drand", "round": 1234, "value": "drand-quicknet-round-1234:abcdef"},
             "winners": picks[:2], "alternates": picks[2:]}
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    (tmp_path / "entries.csv").write_bytes(file_bytes)
    ok = verify("sweepstakes", str(tmp_path / "proof.json"), "--entries", str(tmp_path / "entries.csv"))
    assert ok.returncode == 0, ok.stdout
    (tmp_path / "entries.csv").write_bytes(file_bytes.replace(b"p-0002,10", b"p-0002,11"))
    tampered = verify("sweepstakes", str(tmp_path / "proof.json"), "--entries", str(tmp_path / "entries.csv"))
    assert tampered.returncode == 1
    assert verify("sweepstakes", str(tmp_path / "proof.json")).returncode == 1  # no entries: cannot recompute
