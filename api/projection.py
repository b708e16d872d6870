"""What the journal projector writes besides the ledger: each package's followers, wired in
one place. Call `wire()` once at the start of any process that projects the journal (the
API, `reward-wallet worker`, the CLI's projecting commands)."""

from __future__ import annotations

from games import spin_projection
from programs import audit
from wallet.journal import Follower, register_followers


def followers() -> dict[str, Follower]:
    """Per journal kind, the function that answers the SQL rows that follow from its entries."""
    return {"spin": spin_projection.write_spins, "grant": audit.money_rows, "deduction": audit.money_rows}


def wire() -> None:
    register_followers(followers())
