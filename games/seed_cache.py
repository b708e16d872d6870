"""What a spin needs of its participant's seed pair, kept in process memory between spins.

A spin's words come from the pair's sealed server seed, its client seed and the nonce
(FAIRNESS.md, "Inside Redis"). Reading the pair from Redis before every spin cost a round
trip; here each participant's pair is remembered (id, sealed seed, client seed, the next
nonce we expect) with the words of a window of upcoming nonces, so a spin of someone who
spun recently sends `rw_spin` straight away.

Nothing here has to be fresh: `rw_spin` compares the pair id and nonce it is given with
Redis and refuses before any write when they differ (a rotation, a new client seed, a
spin through another worker), answering the pair as it is now; `refresh` takes that
answer and the spin tries again. The clear server seed is opened only to fill the window
and is not kept; the words kept are what a spin would compute anyway.

Bounded: the least recently used participant is forgotten first.
"""

from __future__ import annotations

from array import array

from fulfillment.sealing import Sealer
from games.fairness import spin_words
from kernel.bounded_map import BoundedMap

# Words per nonce in the common case: one HMAC block (FAIRNESS.md); rw_spin asks for more
# only when all of them are rejected.
WORDS_PER_NONCE = 8
# Nonces whose words are computed at once, so one opening of the sealed seed serves that
# many spins.
PRECOMPUTED = 16


class CachedPair:
    """One participant's pair as last seen, and the words of nonces from `base` on."""

    __slots__ = ("pair", "sealed", "client_seed", "next_nonce", "window", "base", "words")

    def __init__(self, pair: str, sealed: str, client_seed: str, nonce: int) -> None:
        self.pair = pair
        self.sealed = sealed
        self.client_seed = client_seed
        self.next_nonce = nonce
        # Nonces a spin covers from `next_nonce` on: grows when spins of this participant
        # through other workers or concurrent requests keep moving the nonce under us.
        self.window = 1
        self.base = nonce
        # WORDS_PER_NONCE words for each nonce from `base` on, as unsigned 32-bit integers
        # (half a kilobyte a participant, where a list of ints would take ten times that).
        self.words = array("I")

    def words_for(self, sealer: Sealer, first: int, nonces: int, count: int = WORDS_PER_NONCE) -> list[int]:
        """The words of nonces first .. first+nonces-1 in turn, `count` per nonce."""
        if count != WORDS_PER_NONCE:  # the rare retry with more words: not worth keeping
            seed = str(sealer.open(self.sealed))
            return [w for n in range(first, first + nonces) for w in spin_words(seed, self.client_seed, n, count)]
        if first < self.base or (first + nonces - self.base) * WORDS_PER_NONCE > len(self.words):
            self._fill(sealer, first, max(PRECOMPUTED, nonces))
        at = (first - self.base) * WORDS_PER_NONCE
        return self.words[at:at + nonces * WORDS_PER_NONCE].tolist()

    def _fill(self, sealer: Sealer, start: int, nonces: int) -> None:
        seed = str(sealer.open(self.sealed))
        self.base = start
        self.words = array("I", [w for n in range(start, start + nonces)
                                 for w in spin_words(seed, self.client_seed, n, WORDS_PER_NONCE)])

    def spun(self, nonce: int) -> None:
        """A spin used `nonce`: the next one expects the one after it."""
        self.next_nonce = max(self.next_nonce, nonce + 1)


class SeedCache:
    """Participants' pairs by (program, participant), the most recently used kept."""

    def __init__(self, size: int = 4096) -> None:
        self._pairs: BoundedMap[tuple[str, str], CachedPair] = BoundedMap(size, by_use=True)

    def get(self, program_id: str, participant_id: str) -> CachedPair | None:
        return self._pairs.get((program_id, participant_id))

    def refresh(self, program_id: str, participant_id: str, pair: str, sealed: str, client_seed: str,
                nonce: int) -> CachedPair:
        """The pair as Redis holds it now (read, or answered by a refused rw_spin)."""
        key = (program_id, participant_id)
        found = self._pairs.get(key)
        if found is not None and found.pair == pair and found.sealed == sealed and found.client_seed == client_seed:
            found.next_nonce = nonce  # same pair: keep its words
            return found
        entry = CachedPair(pair, sealed, client_seed, nonce)
        if found is not None:
            entry.window = found.window
        self._pairs.put(key, entry)
        return entry

    def forget(self, program_id: str, participant_id: str) -> None:
        self._pairs.pop((program_id, participant_id))

    def __len__(self) -> int:
        return len(self._pairs)


# The process's cache: every spin in this process shares it.
SEEDS = SeedCache()
