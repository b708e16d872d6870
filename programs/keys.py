"""Programs' Redis keys (earning caps, the gate's key marks and rate-limit counters, refresh
tokens' successors, leaderboards) and their part of the function library: the request gate
and leaderboard scoring. Every key carries its program's
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


def key_marks(program_id: str, key_id: str) -> str:
    """An API key's `revoked` and `disabled` marks, under its program's hash tag so the gate
    reads them in the same call as the key's rate-limit counter."""
    return f"{tag(program_id)}:key:{key_id}"


def principal_counter(program_id: str, principal: str, budget: str, window: int, number: int) -> str:
    """A principal's rate-limit counter for one fixed window (its program's hash tag)."""
    return f"{tag(program_id)}:rl:{principal}:{budget}:{window}:{number}"


def refresh_successor(program_id: str, token_hash: str) -> str:
    """The sealed token that replaced a refresh token, kept for its reuse grace."""
    return f"{tag(program_id)}:rt-next:{token_hash}"


def board(program_id: str, board_id: str, period: str) -> str:
    # "lbs": scores are points, tie-breaks in members (the old "lb" sets packed both in the score)
    return f"{tag(program_id)}:lbs:{board_id}:{period}"


def old_board(program_id: str, board_id: str, period: str) -> str:
    """The period's sorted set in the old encoding (points * 2^21 + tie-break in the score),
    moved to the current one on first use (leaderboard_upgrade.lua)."""
    return f"{tag(program_id)}:lb:{board_id}:{period}"


def board_marker(program_id: str, event: str) -> str:
    """A scored event's marker: the boards move once per event (a replay finds it)."""
    return f"{tag(program_id)}:lbm:{event}"


def sign_in_link(program_id: str, token_hash: str) -> str:
    """An unspent sign-in link: the participant it signs in (expires with the link)."""
    return f"{tag(program_id)}:sil:{token_hash}"


def email_code(program_id: str, email_hash: str) -> str:
    """The sign-in code last mailed to an address: a hash with participant, code_hash, tries."""
    return f"{tag(program_id)}:ecode:{email_hash}"


def email_code_sends(program_id: str, scope: str, subject_hash: str, window: int) -> str:
    """How many codes were asked for one address (scope "to") or by one client address
    (scope "ip") in one window."""
    return f"{tag(program_id)}:ecrl:{scope}:{subject_hash}:{window}"
# --- console sessions (programs/console_sessions.py) ----------------------------------------
# A console user belongs to no one program: their keys carry the user's own hash tag.


def console_session(session_id_hash: str) -> str:
    """A console session (user, CSRF token, start time) by the SHA-256 of its cookie value."""
    return f"rw:{{cs:{session_id_hash}}}:console-session"


def console_user_sessions(user_id: str) -> str:
    """The set of a console user's session hashes, for "sign out everywhere"."""
    return f"rw:{{cu:{user_id}}}:console-sessions"


def console_sign_in_failures(who: str, window: int, number: int) -> str:
    """Failed console sign-ins of one address or email (hashed) in one fixed window."""
    return f"rw:{{csf:{who}}}:console-sign-in:{window}:{number}"
