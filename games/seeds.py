"""Participants' seed pairs (FAIRNESS.md, "Spins"): a committed server seed, a client seed
the participant may change, and a nonce.

The pair in use lives in one Redis hash (the spin reads and advances it atomically) and in
SQL, where the server seed stays sealed until the pair is rotated; rotation reveals it in
clear, with the nonce it reached, so every earlier spin can be recomputed. Changing the
client seed rotates the pair too.
"""

from __future__ import annotations

import asyncio
import time
import re
from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from fulfillment.sealing import Sealer
from games.fairness import new_client_seed, new_server_seed, server_seed_hash
from games.tables import SeedPair
from wallet import keys
from wallet.errors import Invalid, Unavailable
from wallet.ids import new_id
from wallet.replies import reply_text

ClientSeed = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")]
_CLAIM_MS = 5_000
_PRINTABLE = re.compile(r"^[\x20-\x7e]{1,64}$")


class Fairness(msgspec.Struct, frozen=True):
    server_seed_hash: str
    client_seed: str
    nonce: int


class Revealed(msgspec.Struct, frozen=True):
    server_seed: str
    server_seed_hash: str
    client_seed: str
    nonce: int


class Rotation(msgspec.Struct, frozen=True):
    revealed: Revealed
    current: Fairness


class ClientSeedChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    client_seed: ClientSeed


async def _create(client: Any, sealer: Sealer, program_id: str, participant_id: str, client_seed: str) -> None:
    server_seed = new_server_seed()
    pair_id = new_id("pair")
    await SeedPair.insert(SeedPair(id=pair_id, program_id=program_id, participant_id=participant_id,
                                   server_seed_hash=server_seed_hash(server_seed), server_seed=sealer.seal(server_seed),
                                   client_seed=client_seed, created_at=datetime.now(timezone.utc))).run()
    # One HSET replaces every field at once: a spin never sees half of two pairs.
    await client.hset(keys.seed_pair(program_id, participant_id), mapping={
        "pair": pair_id, "server_seed": server_seed, "hash": server_seed_hash(server_seed),
        "client_seed": client_seed, "nonce": 0})


async def current(client: Any, sealer: Sealer, program_id: str, participant_id: str) -> Fairness:
    """The pair in use, committed on first sight."""
    key = keys.seed_pair(program_id, participant_id)
    claim = f"{key}:creating"
    deadline = time.monotonic() + 10.0
    while True:
        values = {reply_text(k): reply_text(v) for k, v in (await client.hgetall(key)).items()}
        if "hash" in values:
            return Fairness(server_seed_hash=values["hash"], client_seed=values["client_seed"],
                            nonce=int(values["nonce"]))
        # One of concurrent first calls creates the pair. The claim expires, so a creator
        # that died half-way does not leave the participant without a pair for good.
        if await client.set(claim, "1", nx=True, px=_CLAIM_MS):
            await _create(client, sealer, program_id, participant_id, new_client_seed())
            continue
        if time.monotonic() > deadline:
            raise Unavailable("your seed pair is still being created; retry in a moment")
        await asyncio.sleep(0.02)  # the concurrent creator is finishing


async def rotate(client: Any, sealer: Sealer, program_id: str, participant_id: str,
                 client_seed: str | None = None) -> Rotation:
    """Reveals the pair in use and commits a new one (with a new client seed if given)."""
    if client_seed is not None and not _PRINTABLE.match(client_seed):
        raise Invalid("client_seed is 1..64 printable ASCII characters", field="client_seed")
    await current(client, sealer, program_id, participant_id)
    key = keys.seed_pair(program_id, participant_id)
    old = {reply_text(k): reply_text(v) for k, v in (await client.hgetall(key)).items()}
    await _create(client, sealer, program_id, participant_id, client_seed or old["client_seed"])
    await SeedPair.update({SeedPair.status: "revealed", SeedPair.server_seed: old["server_seed"],
                           SeedPair.final_nonce: old["nonce"], SeedPair.revealed_at: datetime.now(timezone.utc)}) \
        .where(SeedPair.id == old["pair"]).run()
    revealed = Revealed(server_seed=old["server_seed"], server_seed_hash=old["hash"], client_seed=old["client_seed"],
                        nonce=int(old["nonce"]))
    return Rotation(revealed=revealed, current=await current(client, sealer, program_id, participant_id))
