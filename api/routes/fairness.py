"""A participant's seed pair: see the commitment, change the client seed, rotate."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post, put

from api.auth import participant_only, principal_of
from fulfillment.sealing import Sealer
from games import seeds
from wallet.store import WalletStore


@get("/v1/me/fairness", guards=[participant_only], operation_id="getMyFairness", summary="My seed pair",
     description="The SHA-256 of my server seed (committed before any spin), my client seed, and the nonce of my "
                 "next spin (rw-fair-1).", tags=["games"])
async def read(request: Request[Any, Any, Any], sealer: Sealer, wallets: WalletStore) -> seeds.Fairness:
    principal = principal_of(request)
    return await seeds.current(wallets, sealer, principal.program_id or "", principal.subject_id)


@put("/v1/me/fairness/client-seed", guards=[participant_only], operation_id="setMyClientSeed",
     summary="Choose my client seed", description="1..64 printable ASCII characters. Changing it also rotates the "
     "pair: the retired server seed is revealed, a new one committed, and the nonce restarts at 0.", tags=["games"])
async def set_client_seed(request: Request[Any, Any, Any], data: seeds.ClientSeedChange,
                          sealer: Sealer, wallets: WalletStore) -> seeds.Rotation:
    principal = principal_of(request)
    return await seeds.rotate(wallets, sealer, principal.program_id or "", principal.subject_id,
                              data.client_seed)


@post("/v1/me/fairness/rotate", guards=[participant_only], operation_id="rotateMySeeds", summary="Rotate my seed pair",
      description="Reveals the retired server seed (so every spin made with it can be verified) and commits a new "
                  "one; the nonce restarts at 0.", tags=["games"], status_code=200)
async def rotate(request: Request[Any, Any, Any], sealer: Sealer, wallets: WalletStore) -> seeds.Rotation:
    principal = principal_of(request)
    return await seeds.rotate(wallets, sealer, principal.program_id or "", principal.subject_id)


ROUTES = [read, set_client_seed, rotate]
