"""The games' Redis keys (sweepstakes' own: games/sweepstakes_keys.py). Every key
carries its program's hash tag (kernel/keys.py)."""

from __future__ import annotations

from kernel.keys import tag


def campaign(program_id: str, campaign_id: str) -> str:
    return f"{tag(program_id)}:camp:{campaign_id}"


def seed_pair(program_id: str, participant_id: str) -> str:
    return f"{tag(program_id)}:seed:{participant_id}"


def spin_day(program_id: str, campaign_id: str, participant_id: str, day: str) -> str:
    """A participant's spins on a campaign on one day of the program's calendar."""
    return f"{tag(program_id)}:spins:{campaign_id}:{participant_id}:{day}"
