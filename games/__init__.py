"""Provably-fair games: spin-to-win and sweepstakes (FAIRNESS.md, rw-fair-1)."""

__all__: list[str] = []
