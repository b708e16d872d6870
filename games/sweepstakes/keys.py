"""Redis key names of sweepstakes. Each carries its program's hash tag (kernel/keys.py), so
the entry function can touch the sweepstakes, the wallet and the journal in one atomic step
on Redis Cluster too."""

from __future__ import annotations

from kernel.keys import tag


def config(program_id: str, sweepstakes_id: str) -> str:
    """Hash: status (open|closed|drawn), starts_ms, closes_ms, cost, max, pidk (the key of
    public ids), and the running totals tickets, entrants, paid, free."""
    return f"{tag(program_id)}:sw:{sweepstakes_id}"


def tickets(program_id: str, sweepstakes_id: str) -> str:
    """Hash: participant public id -> tickets held. Keyed by the public id, so closing reads
    exactly what the entries file lists, with no per-entrant work."""
    return f"{tag(program_id)}:sw:{sweepstakes_id}:t"


def owners(program_id: str, sweepstakes_id: str) -> str:
    """Hash: participant public id -> participant id, to pay the winners."""
    return f"{tag(program_id)}:sw:{sweepstakes_id}:who"


def paying(program_id: str, sweepstakes_id: str) -> str:
    """String with a short expiry: one request at a time pays a draw's prizes."""
    return f"{tag(program_id)}:sw:{sweepstakes_id}:paying"
