"""Programs' Redis keys named here (the gate's and the leaderboards' sit beside their code:
programs/gate.py, programs/standings.py, programs/sessions.py) and their part of the
function library: the request gate and leaderboard scoring. Every key carries its program's
hash tag (kernel/keys.py)."""

from __future__ import annotations

from kernel.keys import tag
from kernel.lua_library import LuaPart

LUA_PART = LuaPart(package="programs", files=("gate.lua", "leaderboard_upgrade.lua", "leaderboard_score.lua"),
                   uses=frozenset({
                       "BOARDS", "GATEABLE", "MAX_BALANCE"}))


def cap(program_id: str, rule_id: str, participant_id: str, period_key: str) -> str:
    """An earning rule's points given to one participant in one period (rw_award_batch)."""
    return f"{tag(program_id)}:cap:{rule_id}:{participant_id}:{period_key}"
