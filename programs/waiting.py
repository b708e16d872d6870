"""What waits for a person in a program: claims to decide and money moves to approve,
counted in SQL (the console's Overview shows the numbers, not the rows)."""

from __future__ import annotations

from programs.tables import ApprovalRequest, Claim


async def claims_waiting(program_id: str) -> int:
    return await Claim.count().where((Claim.program_id == program_id) & (Claim.status == "pending")).run()


async def approvals_waiting(program_id: str) -> int:
    return await ApprovalRequest.count().where(
        (ApprovalRequest.program_id == program_id) & (ApprovalRequest.status == "pending")).run()
