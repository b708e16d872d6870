"""Releasing a participant's pending lot from their console page: the approval lots an earning
rule holds "until a manager approves", and a dated lot early. The same domain use case as
`POST /v1/participants/{id}/pending-lots/{lot}/release`; the lot's id pins idempotency, so a
double submit or two managers at once release it once."""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Request, Response, post

from api.problems import status_for
from console.manager.web import back, checked_form, refused
from kernel import keys as kernel_keys
from kernel.errors import DomainError
from kernel.idempotency import Idem
from programs import audit, participants, pending
from programs.console_users import MANAGES

P = "/console/p/{program_id:str}"


@post(f"{P}/participants/{{participant_id:str}}/pending-lots/{{lot_id:str}}/release", include_in_schema=False,
      status_code=200)
async def release_lot(request: Request[Any, Any, Any], program_id: str, participant_id: str,
                      lot_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    me = f"user:{ctx.signed.person.id}"
    idem = Idem(key=kernel_keys.idempotency(program_id, "console-release", f"{participant_id}:{lot_id}"),
                fingerprint=hashlib.sha256(f"release|{participant_id}|{lot_id}".encode()).hexdigest())
    try:
        await participants.get_participant(program_id, participant_id)
        released, replayed = await pending.release_lot(request.app.state.wallets, program_id, participant_id, lot_id,
                                                       idem, actor=me)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    if not replayed:
        await audit.record(program_id, me, "pending_lot.released", participant_id, lot=lot_id,
                           points=released.points, transaction=released.transaction_id)
    return back(program_id, f"participants/{participant_id}", "lot-released")


ROUTES = [release_lot]
