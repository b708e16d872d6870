"""Sweepstakes: the admin designs, closes and draws; participants enter with points; the
admin grants free entries (the no-purchase route); anyone can read the proof and the
entries file and recompute the draw."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post

from api.auth import active_program, admin_only, participant_only, principal_of
from api.routes.participants import Cursor, Limit, program_of
from api.routes.points import IDEMPOTENT, REPLAYED, wallets_of
from api.settings import Settings
from catalog.items import pricing_of
from fulfillment.sealing import Sealer
from games.sweepstakes import Entry, design, entries, payouts
from games.sweepstakes import draw as drawing, report as reports
from games.sweepstakes.design import Count, SweepstakesSpec
from games.sweepstakes.draw import Beacon
from games.sweepstakes.entries import Entered
from programs.programs import get_program
from wallet.accounts import Reason
from kernel.ids import Id
from kernel.idempotency import Idem

TAGS = ["sweepstakes"]


class EntryRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    count: Count


class FreeEntryRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    participant_id: Id
    count: Count
    reason: Reason


class ForfeitRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Reason


class DrawRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    beacon: Beacon | None = None


def _entered(entered: Entered) -> Response[Entry]:
    return Response(entered.entry, status_code=201, headers=REPLAYED if entered.replayed else None)


@post("/v1/sweepstakes", guards=[admin_only], operation_id="createSweepstakes", summary="Create a sweepstakes",
      description="Entry cost in points, maximum tickets per participant (paid and free together), winners, "
                  "alternates, close time, optional start time and prizes (points or a catalog item, in rank "
                  "order), sponsor, eligibility and the free method of entry. Commits the server seed at once: "
                  "the answer carries `server_seed_hash`, the official rules and the odds. It takes entries "
                  "until `closes_at`.", tags=TAGS)
async def create(request: Request[Any, Any, Any], data: SweepstakesSpec,
                 sealer: Sealer) -> Response[design.SweepstakesView]:
    program = await get_program(program_of(request))
    view = await design.create(wallets_of(request), sealer, program, data, pricing_of(program))
    return Response(view, status_code=201)


@get("/v1/sweepstakes", guards=[admin_only], operation_id="listSweepstakes", summary="List sweepstakes",
     description="Newest first; filter by status.", tags=TAGS)
async def list_all(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None,
                   status: design.Status | None = None) -> design.SweepstakesPage:
    program = await get_program(program_of(request))
    return await reports.list_all(wallets_of(request), program, pricing_of(program), limit, cursor, status)


@get("/v1/sweepstakes/{sweepstakes_id:str}", guards=[admin_only], operation_id="getSweepstakes",
     summary="Read a sweepstakes", description="With live ticket totals and odds; one past its close time is "
     "closed on this read.", tags=TAGS)
async def read(request: Request[Any, Any, Any], sweepstakes_id: str) -> design.SweepstakesView:
    program = await get_program(program_of(request))
    return await reports.get(wallets_of(request), program, sweepstakes_id, pricing_of(program))


@get("/v1/sweepstakes/{sweepstakes_id:str}/report", guards=[admin_only], operation_id="getSweepstakesReport",
     summary="Sweepstakes report", description="Tickets paid and free, points collected, and each pick of the "
     "draw with the participant behind it and how the prize was paid.", tags=TAGS)
async def report(request: Request[Any, Any, Any], sweepstakes_id: str) -> reports.WinnersReport:
    program = await get_program(program_of(request))
    return await reports.report(wallets_of(request), program, sweepstakes_id)


@post("/v1/sweepstakes/{sweepstakes_id:str}/free-entries", guards=[admin_only], dependencies=IDEMPOTENT,
      operation_id="grantFreeSweepstakesEntries", summary="Grant free entries",
      description="The alternate method of entry (no purchase necessary): tickets with the same odds as paid "
                  "ones, counting toward the same maximum (409 `limit_reached`), recorded with a reason. "
                  "Requires `Idempotency-Key`.", tags=TAGS)
async def free_entries(request: Request[Any, Any, Any], sweepstakes_id: str, data: FreeEntryRequest,
                       idem: Idem) -> Response[Entry]:
    program_id = program_of(request)
    await entries.ensure_participant(program_id, data.participant_id)
    return _entered(await entries.enter(wallets_of(request), program_id, sweepstakes_id, data.participant_id,
                                        data.count, idem, free_reason=data.reason))


@post("/v1/sweepstakes/{sweepstakes_id:str}/close", guards=[admin_only], operation_id="closeSweepstakes",
      summary="Close a sweepstakes", description="Freezes the entries (at once, even before `closes_at`) and "
      "publishes the canonical entries file and its `entries_hash`. Closing again answers the same.",
      tags=TAGS, status_code=200)
async def close(request: Request[Any, Any, Any], sweepstakes_id: str) -> design.SweepstakesView:
    program = await get_program(program_of(request))
    return await entries.close(wallets_of(request), program, sweepstakes_id, pricing_of(program))


@post("/v1/sweepstakes/{sweepstakes_id:str}/draw", guards=[admin_only, active_program], operation_id="drawSweepstakes",
      summary="Draw the winners", description="rw-fair-1 on the committed seed, the entries hash and a beacon "
      "`{source, round, value}`. Without a beacon, and with RW_DRAND_URL set, the server fetches the first drand "
      "round after the close (409 until it is out); with neither, 422. Winners get their prize (points from the "
      "budget or an order) and a feed message. Answers the proof document; drawing again answers the same proof.",
      tags=TAGS, status_code=200)
async def draw(request: Request[Any, Any, Any], sweepstakes_id: str, sealer: Sealer, settings: Settings,
               data: DrawRequest | None = None) -> dict[str, Any]:
    program = await get_program(program_of(request))
    return await drawing.draw(wallets_of(request), sealer, program, pricing_of(program), sweepstakes_id,
                              data.beacon if data else None, settings.drand_url)


@post("/v1/sweepstakes/{sweepstakes_id:str}/winners/{pick:int}/forfeit", guards=[admin_only, active_program],
      operation_id="forfeitSweepstakesPrize", summary="Replace a winner by the next alternate",
      description="For a winner who did not claim by the deadline or is not eligible: the prize passes to the "
                  "first alternate not yet promoted, in draw order, who is paid at once. A prize already paid "
                  "answers 409. Answers the report.", tags=TAGS, status_code=200)
async def forfeit(request: Request[Any, Any, Any], sweepstakes_id: str, pick: int, data: ForfeitRequest,
                  sealer: Sealer) -> reports.WinnersReport:
    program = await get_program(program_of(request))
    return await payouts.forfeit(wallets_of(request), sealer, program, pricing_of(program), sweepstakes_id,
                                 pick, data.reason)


@get("/v1/me/sweepstakes", guards=[participant_only], operation_id="listMySweepstakes",
     summary="Open sweepstakes", description="Those taking entries, newest first, each with its rules, prizes, "
     "odds per ticket, my tickets and how many more I may hold.", tags=TAGS)
async def my_list(request: Request[Any, Any, Any], limit: Limit = 50,
                  cursor: Cursor = None) -> design.MySweepstakesPage:
    principal = principal_of(request)
    program = await get_program(principal.program_id or "")
    return await reports.mine(wallets_of(request), program, principal.subject_id, pricing_of(program), limit,
                              cursor)


@get("/v1/me/sweepstakes/{sweepstakes_id:str}", guards=[participant_only], operation_id="getMySweepstakes",
     summary="One sweepstakes, with my tickets", description="Rules, prizes, odds and my tickets.", tags=TAGS)
async def my_one(request: Request[Any, Any, Any], sweepstakes_id: str) -> design.MySweepstakes:
    principal = principal_of(request)
    program = await get_program(principal.program_id or "")
    return await reports.my_one(wallets_of(request), program, principal.subject_id, sweepstakes_id,
                                pricing_of(program))


@get("/v1/me/sweepstakes-entries", guards=[participant_only], operation_id="listMySweepstakesEntries",
     summary="The sweepstakes I entered", description="Every sweepstakes I hold tickets in, open, closed and drawn, "
     "newest first, with my tickets and the outcome: `open`, `awaiting_draw`, then `won` (with the prize), "
     "`alternate` or `not_won`, and the links to the draw's proof and the entries file. A page may hold fewer "
     "than `limit` items and still carry a `next_cursor` (it looks at up to 1,000 sweepstakes).", tags=TAGS)
async def my_entries(request: Request[Any, Any, Any], limit: Limit = 50,
                     cursor: Cursor = None) -> reports.MySweepstakesEntryPage:
    principal = principal_of(request)
    program = await get_program(principal.program_id or "")
    return await reports.my_entries(wallets_of(request), program, principal.subject_id, limit, cursor)


@post("/v1/me/sweepstakes/{sweepstakes_id:str}/entries", guards=[participant_only], dependencies=IDEMPOTENT,
      operation_id="enterSweepstakes", summary="Buy entries",
      description="`count` tickets at the entry cost each, atomically: 409 `sweepstakes_closed` after the close, "
                  "409 `sweepstakes_not_open` before the start, 409 `limit_reached` past the maximum, 422 "
                  "`insufficient_points`. Requires `Idempotency-Key`.", tags=TAGS)
async def enter(request: Request[Any, Any, Any], sweepstakes_id: str, data: EntryRequest,
                idem: Idem) -> Response[Entry]:
    principal = principal_of(request)
    return _entered(await entries.enter(wallets_of(request), principal.program_id or "", sweepstakes_id,
                                        principal.subject_id, data.count, idem))


@get("/v1/public/sweepstakes/{sweepstakes_id:str}/proof", operation_id="getSweepstakesProof",
     summary="The draw's proof", description="The proof document of FAIRNESS.md (no authentication); 404 until "
     "the draw. Verify it with `reward-wallet verify sweepstakes proof.json --entries entries.csv`.", tags=TAGS,
     security=[])
async def public_proof(request: Request[Any, Any, Any], sweepstakes_id: str) -> Response[bytes]:
    body = await drawing.published_proof(wallets_of(request), sweepstakes_id)
    return Response(body, media_type="application/json")


@get("/v1/public/sweepstakes/{sweepstakes_id:str}/entries.csv", operation_id="getSweepstakesEntries",
     summary="The entries file", description="The canonical entries file (no authentication): "
     "`participant,tickets` by pseudonym, sorted; its SHA-256 is the published `entries_hash`. 404 while open.",
     tags=TAGS, security=[])
async def public_entries(request: Request[Any, Any, Any], sweepstakes_id: str) -> Response[bytes]:
    await entries.close_if_due(wallets_of(request), sweepstakes_id)
    body = await entries.entries_file_of(sweepstakes_id)
    return Response(body, media_type="text/csv; charset=utf-8")


ROUTES = [create, list_all, read, report, free_entries, close, draw, forfeit, my_list, my_one, my_entries, enter, public_proof,
          public_entries]
