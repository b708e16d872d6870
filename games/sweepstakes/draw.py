"""The draw: winners then alternates by rw-fair-1 (games/fairness.py) from the committed
server seed, the published entries hash and a beacon drawn after the close; the proof is
published and the winners are paid (games/sweepstakes/payouts.py). Drawing again answers
the published proof."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from catalog.items import Pricing
from fulfillment.sealing import Sealer
from games import fairness
from games.drand import beacon_after
from games.sweepstakes.design import decode_spec, public_row, rfc3339, sweepstakes_row, utc_now
from games.sweepstakes.entries import close_if_due, current_row
from games.sweepstakes.payouts import pay_winners, record_winners
from games.sweepstakes.tables import Sweepstakes, SweepstakesEntriesFile
from programs.programs import ProgramView
from kernel.errors import Conflict, DomainError, NotFound
from kernel.clock import utc
from wallet.store import WalletStore


class NoBeacon(DomainError):
    code = "validation_error"


class Beacon(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    source: Annotated[str, Meta(min_length=1, max_length=200)]
    round: Annotated[int, Meta(ge=0)] | Annotated[str, Meta(min_length=1, max_length=200)]
    value: Annotated[str, Meta(min_length=1, max_length=1000)]


def _proof(row: dict[str, Any], seed: str, beacon: dict[str, Any], picks: list[str], winners: int) -> dict[str, Any]:
    return {
        "algorithm": fairness.ALGORITHM, "sweepstakes_id": row["id"], "server_seed_hash": row["server_seed_hash"],
        "committed_at": rfc3339(row["committed_at"]), "server_seed": seed, "entries_hash": row["entries_hash"],
        "total_tickets": row["total_tickets"], "entrants": row["entrants"], "beacon": beacon,
        "winners": picks[:winners], "alternates": picks[winners:],
    }


async def draw(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, sweepstakes_id: str,
               beacon: Beacon | None, drand_url: str | None) -> dict[str, Any]:
    """Draws winners then alternates and pays the winners; answers the proof document.

    Drawing again answers the published proof (and retries any prize not paid yet): a
    sweepstakes is drawn once, by whichever request records its proof first."""
    row = await current_row(store, program.id, sweepstakes_id)
    if row["status"] == "open":
        raise Conflict("the sweepstakes is still open: close it (or wait for its close time) before the draw")
    if row["status"] == "closed":
        if beacon is not None:
            chosen: dict[str, Any] = msgspec.to_builtins(beacon)
        elif drand_url:
            chosen = await beacon_after(drand_url, utc(row["closed_at"]))
        else:
            raise NoBeacon("send a beacon {source, round, value}: no drand beacon is configured (RW_DRAND_URL)",
                           field="beacon")
        spec = decode_spec(row["spec"])
        seed = sealer.open(row["server_seed"])
        found = await SweepstakesEntriesFile.select(SweepstakesEntriesFile.body).where(
            SweepstakesEntriesFile.sweepstakes_id == sweepstakes_id).first().run()
        entries = fairness.parse_entries_file(found["body"].encode())
        picks = fairness.draw(seed, row["entries_hash"], chosen["value"], entries, spec.winners + spec.alternates)
        proof = _proof(row, seed, chosen, picks, spec.winners)
        await Sweepstakes.update({
            Sweepstakes.status: "drawn", Sweepstakes.proof: msgspec.json.encode(proof).decode(),
            Sweepstakes.drawn_at: utc_now(), Sweepstakes.updated_at: utc_now(),
        }).where((Sweepstakes.id == sweepstakes_id) & (Sweepstakes.status == "closed")).run()
        row = await sweepstakes_row(program.id, sweepstakes_id)
    proof = msgspec.json.decode(row["proof"])
    await record_winners(store, row, proof)
    await pay_winners(store, sealer, program, pricing, row)
    return proof


async def published_proof(store: WalletStore, sweepstakes_id: str) -> bytes:
    await close_if_due(store, sweepstakes_id)
    row = await public_row(sweepstakes_id)
    if row["proof"] is None:
        raise NotFound("the proof is published with the draw")
    return row["proof"].encode()
