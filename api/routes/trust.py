"""Trust: a program's signed ledger checkpoints (public, when the program publishes them) and
a participant's statement with a proof of each entry."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter

from api.auth import participant_only, principal_of
from api.routes.participants import Cursor, Limit
from fulfillment.sealing import Sealer
from kernel.errors import NotFound
from programs.programs import get_program
from wallet import checkpoints, statements

From = Annotated[date | None, Parameter(query="from", description="the first UTC day, YYYY-MM-DD")]
To = Annotated[date | None, Parameter(query="to", description="the last UTC day, YYYY-MM-DD (inclusive)")]


@get("/v1/public/programs/{program_id:str}/checkpoints", operation_id="listPublicCheckpoints",
     summary="A program's signed ledger checkpoints",
     description="No authentication. One checkpoint per UTC day of the program's hash-chained ledger, newest "
                 "first: seq range, count, previous and head link, Merkle root, and the Ed25519 signature; "
                 "`public_key` is the key that signs them. 404 unless the program publishes them "
                 "(`PATCH /v1/program {\"publish_checkpoints\": true}`).", tags=["trust"], security=[])
async def public_checkpoints(program_id: str, sealer: Sealer, limit: Limit = 50,
                             cursor: Cursor = None) -> checkpoints.CheckpointPage:
    try:
        program = await get_program(program_id)
    except NotFound:
        program = None
    if program is None or not program.publish_checkpoints:
        raise NotFound("no published checkpoints for this program")
    return await checkpoints.page(program.id, sealer, limit, cursor)


@get("/v1/me/statement", guards=[participant_only], operation_id="getMyStatement", summary="My ledger statement",
     description="My ledger entries from `from` to `to` (UTC days, inclusive; default the last 30 days; at most "
                 f"{statements.MAX_DAYS} days and {statements.MAX_ENTRIES:,} entries, else 422), oldest first, each "
                 "with its canonical fields, its chain link and a Merkle proof against a signed checkpoint of its day "
                 "(a stored daily one, or for a day not yet checkpointed one signed now, `kind` interim), and the "
                 "program's public key. Check it offline with `reward-wallet verify statement FILE.json`.",
     tags=["trust"])
async def my_statement(request: Request[Any, Any, Any], sealer: Sealer,
                       from_day: From = None, to_day: To = None) -> statements.Statement:
    principal = principal_of(request)
    return await statements.statement(principal.program_id or "", principal.subject_id, from_day, to_day, sealer)


ROUTES = [public_checkpoints, my_statement]
