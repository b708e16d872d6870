"""Manual grants and deductions (an admin key's POST /v1/points/grants, a console user's
form): one use case each, so both faces move points the same way."""

from __future__ import annotations

from datetime import datetime, timezone

from programs import standings
from wallet import accounts
from wallet.store import WalletStore
from kernel.idempotency import Idem
from kernel.ids import new_id


def who(actor: str | None, approved_by: str | None = None) -> dict[str, str] | None:
    """Who moved the points, for the journal entry's metadata (the audit log reads it)."""
    if actor is None:
        return None
    return {"actor": actor, **({"approved_by": approved_by} if approved_by else {})}


async def grant_points(wallets: WalletStore, program_id: str, participant_id: str, points: int, reason: str,
                       idem: Idem, reference: str = "", actor: str | None = None,
                       approved_by: str | None = None) -> accounts.Moved:
    tx = new_id("tx")
    # The leaderboards move in the grant's own call, only when it applies (not on a replay).
    boards = await standings.grant_boards(program_id, participant_id, standings.UNKNOWN_TEAM, tx,
                                          datetime.now(timezone.utc))
    return await accounts.grant(wallets, program_id, participant_id, points, reason, idem,
                                reference=reference, tx=tx, boards=boards, actor=who(actor, approved_by))


async def deduct_points(wallets: WalletStore, program_id: str, participant_id: str, points: int, reason: str,
                        idem: Idem, reference: str = "", actor: str | None = None,
                        approved_by: str | None = None) -> accounts.Moved:
    return await accounts.deduct(wallets, program_id, participant_id, points, reason, idem, reference=reference,
                                 actor=who(actor, approved_by))
