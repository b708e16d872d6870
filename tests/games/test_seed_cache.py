"""The per-process seed cache: the words it hands out are FAIRNESS.md's, it forgets the
least recently used participant first, and a new pair never reuses an old pair's words."""

from __future__ import annotations

from cryptography.fernet import Fernet

from fulfillment.sealing import Sealer
from games.fairness import spin_words
from games.seed_cache import PRECOMPUTED, SeedCache

SERVER_SEED = "3f1b9f0d5a7e2c4b8a6d0e1f2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7"


def sealer() -> Sealer:
    return Sealer(Fernet.generate_key().decode())


def test_the_words_are_the_streams_of_each_nonce_in_turn() -> None:
    box = sealer()
    cache = SeedCache()
    pair = cache.refresh("prg", "par", "pair_1", box.seal(SERVER_SEED), "dealer-42", 0)
    expected = [w for n in (2, 3, 4) for w in spin_words(SERVER_SEED, "dealer-42", n, 8)]
    assert pair.words_for(box, 2, 3) == expected
    # Past the precomputed window, and with more words per nonce (the rare "more_words").
    far = PRECOMPUTED * 3
    assert pair.words_for(box, far, 2) == [w for n in (far, far + 1) for w in spin_words(SERVER_SEED, "dealer-42",
                                                                                           n, 8)]
    assert pair.words_for(box, 5, 1, 32) == spin_words(SERVER_SEED, "dealer-42", 5, 32)
    # The FAIRNESS.md vector: nonce 0 with these seeds lands on segment 1 of [50, 30, 15, 5].
    assert pair.words_for(box, 0, 1)[0] == spin_words(SERVER_SEED, "dealer-42", 0, 1)[0]


def test_a_new_pair_or_client_seed_starts_afresh_and_the_same_pair_keeps_its_words() -> None:
    box = sealer()
    cache = SeedCache()
    sealed = box.seal(SERVER_SEED)
    first = cache.refresh("prg", "par", "pair_1", sealed, "a", 0)
    first.words_for(box, 0, 1)
    first.spun(0)
    assert cache.refresh("prg", "par", "pair_1", sealed, "a", 7) is first and first.next_nonce == 7
    other = cache.refresh("prg", "par", "pair_2", sealed, "b", 0)
    assert other is not first and other.words_for(box, 0, 1) == spin_words(SERVER_SEED, "b", 0, 8)


def test_the_least_recently_used_participant_is_forgotten_first() -> None:
    box = sealer()
    cache = SeedCache(size=2)
    sealed = box.seal(SERVER_SEED)
    cache.refresh("prg", "ann", "pair_a", sealed, "a", 0)
    cache.refresh("prg", "bob", "pair_b", sealed, "b", 0)
    assert cache.get("prg", "ann") is not None  # ann is now the most recent
    cache.refresh("prg", "cy", "pair_c", sealed, "c", 0)
    assert len(cache) == 2 and cache.get("prg", "bob") is None and cache.get("prg", "ann") is not None
