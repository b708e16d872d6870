"""Points that wait (pending lots) and returned sales (program admin)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import Provide

from api.auth import admin_only, principal_of
from api.idempotency import provide_idem
from api.routes.participants import Cursor, Limit, program_of
from api.settings import Settings
from programs import pending
from programs.participants import get_participant
from wallet.store import WalletStore
from kernel.idempotency import Idem, once

IDEMPOTENT = {"idem": Provide(provide_idem)}
REPLAYED = {"Idempotent-Replayed": "true"}


@get("/v1/participants/{participant_id:str}/pending-lots", guards=[admin_only], operation_id="listPendingLots",
     summary="A participant's pending lots",
     description="Points an earning rule made wait, lot by lot, soonest release first (`releases_at` null: released "
                 "when a manager approves it). Each lot's `id` is the one to release. Answers from Redis: always "
                 "current.", tags=["points"])
async def list_lots(request: Request[Any, Any, Any], participant_id: str, wallets: WalletStore, limit: Limit = 50,
                    cursor: Cursor = None) -> pending.LotPage:
    return await pending.lots_of(wallets, program_of(request), participant_id, limit, cursor)


@post("/v1/participants/{participant_id:str}/pending-lots/{lot_id:str}/release", guards=[admin_only],
      dependencies=IDEMPOTENT, operation_id="releasePendingLot", summary="Release a pending lot",
      description="Moves a pending lot's points into the participant's available balance (an approval lot, or a "
                  "dated one early), paying first any points the participant owes from a returned sale. Requires "
                  "`Idempotency-Key`. A lot already released answers 409 `already_released`; a cancelled one 409 "
                  "`conflict`; an unknown one 404.", tags=["points"], status_code=200)
async def release(request: Request[Any, Any, Any], participant_id: str, lot_id: str, idem: Idem,
                  wallets: WalletStore) -> Response[pending.Release]:
    program_id = program_of(request)
    await get_participant(program_id, participant_id)
    body, replayed = await pending.release_lot(wallets, program_id, participant_id, lot_id, idem,
                                               actor=f"key:{principal_of(request).subject_id}")
    return Response(body, status_code=200, headers=REPLAYED if replayed else None)


@post("/v1/activities/reversals", guards=[admin_only], dependencies=IDEMPOTENT, operation_id="reverseActivity",
      summary="Return a sale",
      description="Cancels the points the activity with this `external_id` earned: its pending lots are cancelled "
                  "(back to the budget); points already released are taken back from `available` up to what is "
                  "there, and the rest is recorded as `owed`, which the participant's next earnings (grants, awards, "
                  "releases, spin and sweepstakes points prizes; never a refund) pay first. The points boards the "
                  "awards raised go down by what they counted there, in the same step. Each step is a feed line. "
                  "Once per activity: a later reversal changes nothing and answers the first result, and no rule "
                  "applied later pays the activity again. 404 for an unknown external id. Requires "
                  "`Idempotency-Key`.", tags=["points"],
      status_code=200)
async def reverse(request: Request[Any, Any, Any], data: pending.ReversalRequest, idem: Idem, wallets: WalletStore,
                  settings: Settings) -> Response[pending.ReversalView]:
    program_id = program_of(request)
    actor = f"key:{principal_of(request).subject_id}"

    async def action() -> pending.ReversalView:
        return (await pending.reverse_sale(wallets, program_id, data, actor))[0]

    body, replayed = await once(wallets.client, idem, settings.idempotency_ttl_seconds, action, pending.ReversalView)
    return Response(body, status_code=200, headers=REPLAYED if replayed else None)


ROUTES = [list_lots, release, reverse]
