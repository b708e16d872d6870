"""Programs' Redis keys named here (the gate's and the leaderboards' sit beside their code:
programs/gate.py, programs/standings.py, programs/sessions.py). Every key carries its program's
hash tag (kernel/keys.py)."""

from __future__ import annotations

from kernel.keys import tag


def cap(program_id: str, rule_id: str, participant_id: str, period_key: str) -> str:
    """An earning rule's points given to one participant in one period (rw_award_batch)."""
    return f"{tag(program_id)}:cap:{rule_id}:{participant_id}:{period_key}"
