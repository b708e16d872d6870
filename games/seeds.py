"""Participants' seed pairs (FAIRNESS.md, "Spins"): a committed server seed, a client seed
the participant may change, and a nonce.

The pair in use lives in one Redis hash (the spin reads and advances it atomically) and in
SQL. Until the pair is rotated its server seed is sealed (fulfillment/sealing.py, the
settings' key) in both: Lua never needs it, and only Python opens it to compute a spin's
words, so reading Redis or the database tells a local process nothing about coming spins.
Rotation reveals the seed in clear, with the nonce it reached, so every earlier spin can
be recomputed. Changing the client seed rotates the pair too.

A new pair replaces the old one in one atomic step (`rw_seed_swap`, games/seeds.lua), so
concurrent rotations and spins leave exactly one pair in use, and each retired pair is
revealed once, at the nonce its last spin left. A rotation retires whichever pair is in use
when its swap runs, so concurrent rotations never make one another retry. SQL follows
Redis: a new pair's row is written first as `pending` (a row whose swap lost is deleted,
one whose process died stays pending and unused), becomes `active` once it is the pair in
use, and `revealed` when it is retired.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from typing import Annotated

import msgspec
from msgspec import Meta

from fulfillment.sealing import Sealer
from games.fairness import new_client_seed, new_server_seed, server_seed_hash
from games.tables import SeedPair
from games import keys as game_keys
from kernel.errors import Invalid, Unavailable
from kernel.ids import new_id
from kernel.replies import Reply, reply_text
from wallet.store import WalletStore

ClientSeed = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")]
_PRINTABLE = re.compile(r"^[\x20-\x7e]{1,64}$")
# A rotation's swap fails only when the participant has no pair yet (a first commitment
# then makes one), and a first commitment only when another commitment won; a few attempts
# cover a pair wiped between two steps (Redis rebuilt from the ledger).
_ATTEMPTS = 5


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


class _Swapped(Reply, frozen=True):
    """rw_seed_swap's answer: the retired pair (`pair` "" when there was none)."""

    pair: str = ""
    sealed: str = ""
    server_seed: str = ""
    hash: str = ""
    client_seed: str = ""
    nonce: str = "0"
    new_client_seed: str = ""


_decode_swapped = msgspec.json.Decoder(_Swapped).decode


def retired_key(program_id: str, participant_id: str) -> str:
    """Retired pairs not yet revealed in SQL (pair id -> final nonce), under the same tag."""
    return game_keys.seed_pair(program_id, participant_id) + ":retired"


def server_seed_of(sealer: Sealer, pair: dict[str, str]) -> str:
    """The clear server seed of a pair as read from Redis (a pair committed before seeds
    were sealed there holds it in clear)."""
    if "sealed" in pair:
        return str(sealer.open(pair["sealed"]))
    return pair["server_seed"]


async def read_pair(store: WalletStore, program_id: str, participant_id: str) -> dict[str, str]:
    raw = await store.client.hgetall(game_keys.seed_pair(program_id, participant_id))
    return {reply_text(k): reply_text(v) for k, v in raw.items()}


async def seal_legacy(store: WalletStore, sealer: Sealer, program_id: str, participant_id: str,
                      pair: dict[str, str]) -> None:
    """Seals in place the clear seed of a pair committed by an earlier version."""
    if "server_seed" in pair and "sealed" not in pair and "pair" in pair:
        await store.fcall("rw_seed_seal", [game_keys.seed_pair(program_id, participant_id)],
                          [pair["pair"], sealer.seal(pair["server_seed"])])


async def _commit(store: WalletStore, sealer: Sealer, program_id: str, participant_id: str, expected: str,
                  client_seed: str, likely_client_seed: str = "") -> tuple[_Swapped, Fairness] | None:
    """Commits a new pair in place of `expected` ("" for none, "*" for whichever is in use;
    client seed "" keeps the retired pair's, most likely `likely_client_seed`); None if the
    pair in use is not the expected one. Answers the retired pair and the new one."""
    server_seed = new_server_seed()
    digest, sealed, pair_id = server_seed_hash(server_seed), sealer.seal(server_seed), new_id("pair")
    await SeedPair.insert(SeedPair(id=pair_id, program_id=program_id, participant_id=participant_id,
                                   server_seed_hash=digest, server_seed=sealed,
                                   client_seed=client_seed or likely_client_seed, status="pending",
                                   created_at=datetime.now(timezone.utc))).run()
    swapped = _decode_swapped(await store.fcall(
        "rw_seed_swap", [game_keys.seed_pair(program_id, participant_id), retired_key(program_id, participant_id)],
        [expected, pair_id, sealed, digest, client_seed]))
    if not swapped.ok:
        await SeedPair.delete().where(SeedPair.id == pair_id).run()
        return None
    client_seed = swapped.new_client_seed or client_seed
    # Only a pending row becomes active: a concurrent rotation may already have retired it.
    await SeedPair.update({SeedPair.status: "active", SeedPair.client_seed: client_seed}).where(
        (SeedPair.id == pair_id) & (SeedPair.status == "pending")).run()
    return swapped, Fairness(server_seed_hash=digest, client_seed=client_seed, nonce=0)


async def _reveal(store: WalletStore, program_id: str, participant_id: str, pair_id: str, server_seed: str,
                  final_nonce: str, client_seed: str | None = None) -> None:
    values = {SeedPair.status: "revealed", SeedPair.server_seed: server_seed, SeedPair.final_nonce: final_nonce,
              SeedPair.revealed_at: datetime.now(timezone.utc)}
    if client_seed:  # the pair's own, as Redis held it (its row may still hold a guess)
        values[SeedPair.client_seed] = client_seed
    await SeedPair.update(values).where(SeedPair.id == pair_id).run()
    await store.client.hdel(retired_key(program_id, participant_id), pair_id)


async def _finish_reveals(store: WalletStore, sealer: Sealer, program_id: str, participant_id: str) -> None:
    """Reveals in SQL the pairs a rotation retired in Redis but died before revealing."""
    waiting = await store.client.hgetall(retired_key(program_id, participant_id))
    for raw_pair, raw_nonce in waiting.items():
        pair_id = reply_text(raw_pair)
        rows = await SeedPair.select(SeedPair.server_seed, SeedPair.status).where(SeedPair.id == pair_id).run()
        if rows and rows[0]["status"] != "revealed":
            await _reveal(store, program_id, participant_id, pair_id, str(sealer.open(rows[0]["server_seed"])),
                          reply_text(raw_nonce))
        else:
            await store.client.hdel(retired_key(program_id, participant_id), pair_id)


async def commit_ahead(store: WalletStore, sealer: Sealer, program_id: str, participant_ids: list[str],
                       chunk: int = 500) -> int:
    """Commits a pair for each participant who has none, in bulk: one SQL insert and one
    round of swaps per `chunk`. Run when a campaign launches, so the launch storm's first
    spins find their pair in use and write no SQL (a first commitment on a spin costs two
    SQL writes and three more Redis calls). Answers how many pairs it committed."""
    committed = 0
    for start in range(0, len(participant_ids), chunk):
        ids = participant_ids[start:start + chunk]
        present = await asyncio.gather(*[store.execute("EXISTS", game_keys.seed_pair(program_id, p)) for p in ids])
        missing = [p for p, exists in zip(ids, present) if not exists]
        if not missing:
            continue
        now = datetime.now(timezone.utc)
        pairs = []
        for participant_id in missing:
            server_seed = new_server_seed()
            pairs.append(SeedPair(id=new_id("pair"), program_id=program_id, participant_id=participant_id,
                                  server_seed_hash=server_seed_hash(server_seed), server_seed=sealer.seal(server_seed),
                                  client_seed=new_client_seed(), status="pending", created_at=now))
        await SeedPair.insert(*pairs).run()
        # "": only where there is still no pair (a spin may have committed one meanwhile).
        replies = await asyncio.gather(*[store.fcall(
            "rw_seed_swap", [game_keys.seed_pair(program_id, pair.participant_id),
                             retired_key(program_id, pair.participant_id)],
            ["", pair.id, pair.server_seed, pair.server_seed_hash, pair.client_seed]) for pair in pairs])
        won = [pair.id for pair, reply in zip(pairs, replies) if _decode_swapped(reply).ok]
        lost = [pair.id for pair, reply in zip(pairs, replies) if not _decode_swapped(reply).ok]
        if won:
            await SeedPair.update({SeedPair.status: "active"}).where(
                SeedPair.id.is_in(won) & (SeedPair.status == "pending")).run()
        if lost:
            await SeedPair.delete().where(SeedPair.id.is_in(lost)).run()
        committed += len(won)
    return committed


async def current(store: WalletStore, sealer: Sealer, program_id: str, participant_id: str) -> Fairness:
    """The pair in use, committed on first sight (of concurrent first calls, one commits and
    the others read its pair)."""
    for _ in range(_ATTEMPTS):
        pair = await read_pair(store, program_id, participant_id)
        if "hash" in pair:
            if "sealed" not in pair:
                await seal_legacy(store, sealer, program_id, participant_id, pair)
            return Fairness(server_seed_hash=pair["hash"], client_seed=pair["client_seed"], nonce=int(pair["nonce"]))
        await _commit(store, sealer, program_id, participant_id, "", new_client_seed())
    raise Unavailable("your seed pair is still being created; retry in a moment")


async def rotate(store: WalletStore, sealer: Sealer, program_id: str, participant_id: str,
                 client_seed: str | None = None) -> Rotation:
    """Reveals the pair in use and commits a new one (with a new client seed if given)."""
    if client_seed is not None and not _PRINTABLE.match(client_seed):
        raise Invalid("client_seed is 1..64 printable ASCII characters", field="client_seed")
    await _finish_reveals(store, sealer, program_id, participant_id)
    for _ in range(_ATTEMPTS):
        # "*": whichever pair is in use when the swap runs, and its client seed unless a new one
        # is given, so a rotation racing others still rotates at its first attempt.
        pair = await read_pair(store, program_id, participant_id)
        if "hash" not in pair:
            await current(store, sealer, program_id, participant_id)  # no pair yet: commit one first
            continue
        committed = await _commit(store, sealer, program_id, participant_id, "*", client_seed or "",
                                  pair["client_seed"])
        if committed is None:
            continue
        retired, new = committed
        server_seed = sealer.open(retired.sealed) if retired.sealed else retired.server_seed
        await _reveal(store, program_id, participant_id, retired.pair, str(server_seed), retired.nonce,
                      retired.client_seed)
        revealed = Revealed(server_seed=str(server_seed), server_seed_hash=retired.hash,
                            client_seed=retired.client_seed, nonce=int(retired.nonce))
        return Rotation(revealed=revealed, current=new)
    raise Unavailable("your seed pair is changing too often right now; retry in a moment")
