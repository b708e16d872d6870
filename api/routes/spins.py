"""spins routes (being built)."""

ROUTES: list = []
