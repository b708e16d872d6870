"""sweepstakes routes (being built)."""

ROUTES: list = []
