"""Programs (operator) and the program's own settings and admin keys (program admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.exceptions import PermissionDeniedException
from msgspec import Meta

from api.auth import Authenticator, admin_only, operator_only, principal_of
from api.routes.participants import Cursor, Limit
from catalog.changes import change_program
from programs import audit, credentials
from programs.programs import NewProgram, ProgramChanges, ProgramView, StatusChange, create_program, get_program, set_status
from wallet.store import WalletStore


class ProgramCreated(msgspec.Struct, frozen=True):
    program_id: str
    admin_key: str
    program: ProgramView


class NewAdminKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] = "admin"


class AdminKeyCreated(msgspec.Struct, frozen=True):
    id: str
    name: str
    api_key: str
    created_at: datetime


class AdminKeyList(msgspec.Struct, frozen=True):
    items: list[credentials.AdminKeyView]
    next_cursor: str | None = None


async def apply_program_config(wallets: WalletStore, program: ProgramView) -> None:
    """The wallet's Lua reads the overdraft rule from Redis; keep it in step with SQL."""
    await wallets.set_program_config(program.id, overdraft="1" if program.allow_overdraft else "0")


@post("/v1/programs", guards=[operator_only], operation_id="createProgram", summary="Create a program",
      description="Operator only. Creates a program (tenant) and its first admin key, shown once.",
      tags=["programs"])
async def create(data: NewProgram, wallets: WalletStore) -> Response[ProgramCreated]:
    program, admin_key = await create_program(data)
    await apply_program_config(wallets, program)
    return Response(ProgramCreated(program_id=program.id, admin_key=admin_key, program=program), status_code=201)


@get("/v1/programs/{program_id:str}", guards=[operator_only], operation_id="getProgramAsOperator",
     summary="Read a program", description="Operator only.", tags=["programs"])
async def read_any(program_id: str) -> ProgramView:
    return await get_program(program_id)


@patch("/v1/programs/{program_id:str}", guards=[operator_only], operation_id="setProgramStatus",
       summary="Suspend or reactivate a program",
       description="Operator only. `suspended`: from the very next request, grants, deductions, batches, awarding "
                   "activities, claims filed or approved, spins, sweepstakes entries and draws, redemptions, token "
                   "mints and refreshes answer 409 `program_suspended`; orders placed before are still claimed, "
                   "fulfilled and failed, Stripe payments are recorded, expiry runs and reads work. `active` lifts it.",
       tags=["programs"])
async def set_program_status(program_id: str, data: StatusChange, wallets: WalletStore) -> ProgramView:
    return await set_status(wallets, program_id, data.status)


@get("/v1/program", guards=[admin_only], operation_id="getOwnProgram", summary="This key's program",
     description="The program the admin key belongs to.", tags=["programs"])
async def read_own(request: Request[Any, Any, Any]) -> ProgramView:
    return await get_program(principal_of(request).program_id or "")


@patch("/v1/program", guards=[admin_only], operation_id="updateOwnProgram", summary="Change program settings",
       opt={"audit": "self"},
       description="Name, point name, time zone, whether grants may overdraw the budget, and whether the signed "
                   "ledger checkpoints are public (`publish_checkpoints`). `status` is the "
                   "operator's (PATCH /v1/programs/{id}): sending it answers 403.",
       tags=["programs"])
async def update_own(request: Request[Any, Any, Any], data: ProgramChanges, wallets: WalletStore) -> ProgramView:
    if data.status is not None:
        raise PermissionDeniedException("only the platform operator suspends or reactivates a program")
    principal = principal_of(request)
    view = await change_program(wallets, principal.program_id or "", data)
    await audit.record(view.id, f"key:{principal.subject_id}", "program.settings_changed", view.id,
                       **msgspec.to_builtins(data))
    return view


@post("/v1/admin-keys", guards=[admin_only], operation_id="createAdminKey", summary="Issue an admin key",
      description="A new key for this program; the secret is in the answer once and stored only hashed.",
      tags=["programs"])
async def create_key(request: Request[Any, Any, Any], data: NewAdminKey) -> Response[AdminKeyCreated]:
    view, secret = await credentials.issue_key(principal_of(request).program_id or "", "admin", name=data.name)
    return Response(AdminKeyCreated(id=view.id, name=view.name, api_key=secret, created_at=view.created_at),
                    status_code=201)


@get("/v1/admin-keys", guards=[admin_only], operation_id="listAdminKeys", summary="List admin keys",
     description="Ids, names and revocation times, newest first; never the secrets.", tags=["programs"])
async def list_keys(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None) -> AdminKeyList:
    items, more = await credentials.list_admin_keys(principal_of(request).program_id or "", limit, cursor)
    return AdminKeyList(items=items, next_cursor=more)


@delete("/v1/admin-keys/{key_id:str}", guards=[admin_only], operation_id="revokeAdminKey",
        summary="Revoke an admin key", description="The key stops working at once, on every API machine.",
        tags=["programs"], status_code=204)
async def revoke_key(request: Request[Any, Any, Any], key_id: str, authenticator: Authenticator) -> None:
    program_id = principal_of(request).program_id or ""
    await credentials.revoke_key(program_id, key_id)
    await authenticator.mark_revoked(program_id, key_id)


ROUTES = [create, read_any, set_program_status, read_own, update_own, create_key, list_keys, revoke_key]
