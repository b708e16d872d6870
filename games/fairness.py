"""Provable fairness, algorithm `rw-fair-1` (FAIRNESS.md), as pure functions.

Spins and sweepstakes draws are recomputed from published data with exactly these
functions: by the API when it plays, by `reward-wallet verify` and by the tests. No I/O
here, so an outside auditor can read this one file against the spec.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import msgspec

__all__ = [
    "ALGORITHM",
    "MAX_TOTAL",
    "ByteStream",
    "VerifyResult",
    "WordReader",
    "below",
    "choose_segment",
    "draw",
    "draw_prefix",
    "entries_file",
    "entries_hash",
    "floats",
    "hmac_block",
    "new_client_seed",
    "new_server_seed",
    "parse_entries_file",
    "server_seed_hash",
    "spin_prefix",
    "spin_segment",
    "spin_words",
    "verify_spin_proof",
    "verify_sweepstakes_proof",
    "word",
]

ALGORITHM = "rw-fair-1"
# Largest n for below(n), largest wheel weight total and largest ticket total: a 32-bit
# word then still gives every value in [0, n) at least once.
MAX_TOTAL = 2**32
_TWO_32 = 2**32
_LOW_32 = _TWO_32 - 1
_HEADER = "participant,tickets"
_HEX = frozenset("0123456789abcdef")
_MAX_MISMATCH_LINES = 10


# --- The byte stream -----------------------------------------------------------------


def hmac_block(key: str, prefix: str, index: int) -> bytes:
    """Block `index` of stream(key, prefix): HMAC_SHA256(key, f"{prefix}:{index}")."""
    return hmac.new(key.encode(), f"{prefix}:{index}".encode(), hashlib.sha256).digest()


class ByteStream:
    """stream(key, prefix), read front to back; no byte is handed out twice."""

    __slots__ = ("_mac", "_prefix", "_index", "_block", "_pos")

    def __init__(self, key: str, prefix: str) -> None:
        # Keying HMAC once and copying it per block skips re-hashing the padded key.
        self._mac = hmac.new(key.encode(), digestmod=hashlib.sha256)
        self._prefix = prefix
        self._index = 0
        self._block = b""
        self._pos = 0

    def take(self, count: int) -> bytes:
        out = bytearray()
        while len(out) < count:
            if self._pos == len(self._block):
                mac = self._mac.copy()
                mac.update(f"{self._prefix}:{self._index}".encode())
                self._block, self._pos, self._index = mac.digest(), 0, self._index + 1
            part = self._block[self._pos:self._pos + count - len(out)]
            self._pos += len(part)
            out += part
        return bytes(out)

    def word(self) -> int:
        return int.from_bytes(self.take(4), "big")


class WordReader(Protocol):
    """Anything that hands out 32-bit words in order; ByteStream is the real one."""

    def word(self) -> int: ...


def word(stream: WordReader) -> int:
    """The next 4 bytes as a big-endian unsigned 32-bit integer."""
    return stream.word()


def floats(stream: WordReader, count: int) -> list[float]:
    """The next `count` floats, b0/256 + b1/256^2 + b2/256^3 + b3/256^4 each.

    That sum is word/2^32: every term and partial sum fits a double's 53-bit mantissa, so
    both are exact and agree bit for bit with the published verifiers' JavaScript."""
    return [stream.word() / _TWO_32 for _ in range(count)]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TOTAL:
        raise ValueError(f"below(n) needs a whole n with 1 <= n <= 2^32, got {n!r}")


def _below(words: Iterator[int], n: int) -> int | None:
    # Lemire's rule: the words whose low half falls under 2^32 mod n are exactly the
    # surplus that would make some answers more likely, so they are skipped.
    threshold = _TWO_32 % n
    for w in words:
        m = w * n
        if m & _LOW_32 >= threshold:
            return m >> 32
    return None


def below(stream: WordReader, n: int) -> int:
    """A uniform integer in [0, n), 1 <= n <= 2^32, by rejection sampling (no bias)."""
    _check_n(n)
    # The stream never ends, so the sentinel is never met and an answer always comes.
    answer = _below(iter(stream.word, -1), n)
    assert answer is not None
    return answer


# --- Seeds ---------------------------------------------------------------------------


def server_seed_hash(server_seed: str) -> str:
    return hashlib.sha256(server_seed.encode()).hexdigest()


def new_server_seed() -> str:
    """32 bytes from the OS CSPRNG as 64 lowercase hex characters."""
    return secrets.token_hex(32)


def new_client_seed() -> str:
    """A random default client seed; the participant may replace it."""
    return secrets.token_hex(8)


# --- Spins ---------------------------------------------------------------------------


def spin_prefix(client_seed: str, nonce: int) -> str:
    if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
        raise ValueError(f"nonce must be a whole number >= 0, got {nonce!r}")
    return f"{client_seed}:{nonce}"


def _total_weight(weights: Sequence[int]) -> int:
    total = 0
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ValueError(f"weight {i} must be a whole number >= 0, got {w!r}")
        total += w
    if not 1 <= total <= MAX_TOTAL:
        raise ValueError(f"weights must sum to between 1 and 2^32, they sum to {total}")
    return total


def _segment_at(weights: Sequence[int], r: int) -> int:
    # First i with w[0] + ... + w[i] > r; zero-weight segments can never be it.
    reached = 0
    for i, w in enumerate(weights):
        reached += w
        if reached > r:
            return i
    raise AssertionError("r must be below the weight total")


def spin_segment(server_seed: str, client_seed: str, nonce: int, weights: Sequence[int]) -> int:
    """The segment a spin lands on: below(sum(w)) on stream(server_seed, client_seed:nonce)."""
    total = _total_weight(weights)
    r = below(ByteStream(server_seed, spin_prefix(client_seed, nonce)), total)
    return _segment_at(weights, r)


def spin_words(server_seed: str, client_seed: str, nonce: int, count: int = 8) -> list[int]:
    """The first `count` words of a spin's stream, for the spin function in Redis (which has
    no SHA-256). Eight words are one HMAC block and are almost always enough.

    The same words ByteStream.word hands out, read a block at a time: `hmac.digest` is one C
    call a block and `struct` splits it, about 5 us a nonce against ByteStream's 12 (the API
    computes 16 nonces' words for a participant at once, games/seed_cache.py)."""
    prefix, key = spin_prefix(client_seed, nonce), server_seed.encode()
    blocks = b"".join(hmac.digest(key, f"{prefix}:{i}".encode(), "sha256") for i in range((count + 7) // 8))
    return list(struct.unpack(f">{count}I", blocks[:4 * count]))


def choose_segment(words: Sequence[int], weights: Sequence[int]) -> int | None:
    """spin_segment's choice on given words; None if they ran out (fetch more and retry).

    Mirrors games/spin_choice.lua, which the tests hold to the same answers."""
    total = _total_weight(weights)
    for i, w in enumerate(words):
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= _LOW_32:
            raise ValueError(f"word {i} must be a 32-bit unsigned integer, got {w!r}")
    r = _below(iter(words), total)
    return None if r is None else _segment_at(weights, r)


# --- Sweepstakes ---------------------------------------------------------------------


def _id_problem(public_id: object) -> str | None:
    if not isinstance(public_id, str) or not public_id:
        return f"a participant public id must be a non-empty string, got {public_id!r}"
    try:
        raw = public_id.encode()
    except UnicodeEncodeError:
        return f"participant public id {public_id!r} is not valid Unicode"
    # A comma or line break would change how the file splits into rows.
    if b"," in raw or b"\n" in raw or b"\r" in raw:
        return f"participant public id {public_id!r} contains a comma or line break"
    return None


def entries_file(entries: Iterable[tuple[str, int]]) -> bytes:
    """The canonical entries file: header, then `id,tickets` per entrant with at least one
    ticket, sorted bytewise by public id, LF line ends."""
    rows: list[tuple[bytes, int]] = []
    append = rows.append
    try:
        for public_id, tickets in entries:
            # type() rather than isinstance: True is an int but not a ticket count.
            if type(tickets) is not int or tickets < 0:
                raise ValueError(f"tickets of {public_id!r} must be a whole number >= 0, got {tickets!r}")
            append((public_id.encode(), tickets))
    except (AttributeError, UnicodeEncodeError):
        # The id that just failed to encode: entries may be a one-shot iterator.
        raise ValueError(_id_problem(public_id) or "invalid participant public id") from None
    rows.sort()
    previous = None
    for raw, _ in rows:
        if raw == previous:
            raise ValueError(f"participant {raw.decode()!r} is listed twice")
        previous = raw
    kept = [row for row in rows if row[1]]
    out = bytearray(_HEADER.encode() + b"\n")
    for row in kept:
        out += b"%s,%d\n" % row
    total = sum(tickets for _, tickets in kept)
    # Ids are checked in bulk, at C speed, on the finished file: exactly one comma and one
    # line feed per line means no id holds either (sorted, an empty id would come first);
    # the per-id check runs only to name the culprit.
    if (out.count(b",") != len(kept) + 1 or out.count(b"\n") != len(kept) + 1 or b"\r" in out
            or (kept and not kept[0][0])):
        culprit = next(problem for raw, _ in kept if (problem := _id_problem(raw.decode())))
        raise ValueError(culprit)
    if total > MAX_TOTAL:
        raise ValueError(f"a sweepstakes holds at most 2^32 tickets, these entries hold {total}")
    return bytes(out)


def entries_hash(file_bytes: bytes) -> str:
    return hashlib.sha256(file_bytes).hexdigest()


def _is_ticket_count(text: str) -> bool:
    # ASCII digits only (int() would take "²", "٣" or " 5"), no sign, no leading zero.
    return text.isascii() and text.isdigit() and text[0] != "0"


def parse_entries_file(data: bytes) -> list[tuple[str, int]]:
    """Entrants in file order from a canonical entries file; ValueError names the first
    thing that is not canonical, since a verifier must draw from exactly these bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError("the entries file must be bytes")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the entries file is not UTF-8 (byte {exc.start})") from None
    if "\r" in text:
        raise ValueError("the entries file must use LF line ends, it contains CR")
    if not text.endswith("\n"):
        raise ValueError("the entries file must end with a line feed")
    lines = text[:-1].split("\n")
    if lines[0] != _HEADER:
        raise ValueError(f"line 1 must be the header {_HEADER!r}, got {lines[0][:80]!r}")
    entries: list[tuple[str, int]] = []
    total = 0
    previous = ""
    for number, line in enumerate(lines[1:], start=2):
        public_id, comma, tickets = line.partition(",")
        if not comma:
            raise ValueError(f"line {number} must be participant,tickets, got {line[:80]!r}")
        if not public_id:
            raise ValueError(f"line {number} has an empty participant id")
        if not _is_ticket_count(tickets):
            raise ValueError(f"line {number}: tickets must be a whole number >= 1 without leading zeros,"
                             f" got {tickets[:40]!r}")
        # Text decoded from UTF-8 has no surrogates, so code point order is byte order.
        if public_id <= previous:
            raise ValueError(f"line {number}: participant {public_id[:80]!r} is out of order or repeated"
                             " (the file is sorted bytewise by participant)")
        previous = public_id
        count = int(tickets)
        total += count
        entries.append((public_id, count))
    if total > MAX_TOTAL:
        raise ValueError(f"a sweepstakes holds at most 2^32 tickets, this file holds {total}")
    return entries


def draw_prefix(entries_hash: str, beacon_value: str) -> str:
    return f"{entries_hash}:{beacon_value}"


def draw(server_seed: str, entries_hash: str, beacon_value: str,
         entries: Sequence[tuple[str, int]], picks: int) -> list[str]:
    """Winners then alternates, `picks` in all or fewer if entrants run out (FAIRNESS.md).

    Ticket counts live in a Fenwick tree, so finding whose range holds ticket t and
    removing that entrant's tickets are O(log n) each: a million entrants draw in
    well under a second, with no per-ticket list."""
    if isinstance(picks, bool) or not isinstance(picks, int) or picks < 0:
        raise ValueError(f"picks must be a whole number >= 0, got {picks!r}")
    size = len(entries)
    try:
        # Slot 0 unused: the tree is 1-based. 'q' keeps a million counts in 8 MB.
        tree = array("q", [0])
        tree.extend([tickets for _, tickets in entries])
    except (TypeError, OverflowError):
        raise ValueError("tickets must be whole numbers >= 0 and at most 2^32") from None
    remaining = sum(tree)
    if size and min(tree) < 0:
        raise ValueError("tickets must be whole numbers >= 0")
    if remaining > MAX_TOTAL:
        raise ValueError(f"a sweepstakes holds at most 2^32 tickets, these entries hold {remaining}")
    # Linear-time build: each node passes its sum up to its parent once.
    for i in range(1, size + 1):
        parent = i + (i & -i)
        if parent <= size:
            tree[parent] += tree[i]
    top = 1 << (size.bit_length() - 1) if size else 0
    stream = ByteStream(server_seed, draw_prefix(entries_hash, beacon_value))
    winners: list[str] = []
    while len(winners) < picks and remaining > 0:
        t = below(stream, remaining)
        # Descend to the last position whose prefix sum is <= t; the entrant after it holds
        # ticket t. Removed entrants add nothing to prefix sums, so they are passed over.
        pos, step = 0, top
        while step:
            nxt = pos + step
            if nxt <= size and tree[nxt] <= t:
                pos = nxt
                t -= tree[nxt]
            step >>= 1
        public_id, tickets = entries[pos]
        winners.append(public_id)
        remaining -= tickets
        i = pos + 1
        while i <= size:
            tree[i] -= tickets
            i += i & -i
    return winners


# --- Verification --------------------------------------------------------------------


class VerifyResult(msgspec.Struct, frozen=True):
    ok: bool
    problems: list[str]


def _result(problems: list[str]) -> VerifyResult:
    return VerifyResult(ok=not problems, problems=problems)


def _is_int(value: object) -> bool:
    # JSON true/false decode to bool, a subclass of int: never a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _encodable(text: str) -> bool:
    # JSON may carry lone surrogates ("\ud800"), which have no UTF-8 bytes to hash.
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def _text(doc: dict[Any, Any], name: str, problems: list[str]) -> str | None:
    value = doc.get(name)
    if name not in doc:
        problems.append(f"{name} is missing")
    elif not isinstance(value, str) or not value:
        problems.append(f"{name} must be a non-empty string")
    elif not _encodable(value):
        problems.append(f"{name} is not valid Unicode")
    else:
        return value
    return None


def _hex64(doc: dict[Any, Any], name: str, problems: list[str]) -> str | None:
    value = _text(doc, name, problems)
    if value is not None and not _is_hex64(value):
        problems.append(f"{name} must be 64 lowercase hex characters")
        return None
    return value


def _count(doc: dict[Any, Any], name: str, problems: list[str], most: int | None = None) -> int | None:
    value = doc.get(name)
    if name not in doc:
        problems.append(f"{name} is missing")
    elif not _is_int(value) or value < 0:
        problems.append(f"{name} must be a whole number >= 0")
    elif most is not None and value > most:
        problems.append(f"{name} must be at most {most}")
    else:
        return value
    return None


def _check_algorithm(doc: dict[Any, Any], problems: list[str]) -> None:
    if doc.get("algorithm") != ALGORITHM:
        problems.append(f"algorithm must be {ALGORITHM!r}, got {doc.get('algorithm')!r}")


def _revealed_seed(doc: dict[Any, Any], commitment: str | None, problems: list[str]) -> str | None:
    seed = _text(doc, "server_seed", problems)
    if seed is None:
        return None
    if not _is_hex64(seed):
        # Still recomputed: the hash check is what binds the operator; this flags a seed
        # that was not made the way the spec says (32 CSPRNG bytes as hex).
        problems.append("server_seed is not 64 lowercase hex characters")
    if commitment is not None and server_seed_hash(seed) != commitment:
        problems.append("server_seed does not hash to server_seed_hash")
    return seed


def _client_seed(doc: dict[Any, Any], problems: list[str]) -> str | None:
    seed = _text(doc, "client_seed", problems)
    if seed is not None and not (len(seed) <= 64 and all(" " <= c <= "~" for c in seed)):
        problems.append("client_seed must be 1 to 64 printable ASCII characters")
    return seed


def _weights(doc: dict[Any, Any], problems: list[str]) -> list[int] | None:
    value = doc.get("weights")
    if "weights" not in doc:
        problems.append("weights is missing")
    elif not isinstance(value, list) or not value or not all(_is_int(w) and w >= 0 for w in value):
        problems.append("weights must be a non-empty list of whole numbers >= 0")
    elif not 1 <= sum(value) <= MAX_TOTAL:
        problems.append(f"weights must sum to between 1 and 2^32, they sum to {sum(value)}")
    else:
        return value
    return None


def verify_spin_proof(doc: dict[str, Any]) -> VerifyResult:
    """Checks a spin proof: the revealed seed against its commitment, then the segment.
    Never raises: anything wrong with the document is a problem in the result."""
    if not isinstance(doc, dict):
        return _result(["the spin proof must be a JSON object"])
    if isinstance(doc.get("proof"), dict):
        # A whole spin as GET /v1/me/spins lists it: the proof inside, the segment beside it.
        doc = {**doc["proof"], "segment_index": doc.get("segment_index", doc["proof"].get("segment_index"))}
    problems: list[str] = []
    _check_algorithm(doc, problems)
    commitment = _hex64(doc, "server_seed_hash", problems)
    client_seed = _client_seed(doc, problems)
    nonce = _count(doc, "nonce", problems)
    weights = _weights(doc, problems)
    index = _count(doc, "segment_index", problems)
    if doc.get("server_seed") is None:
        problems.append("server_seed is not revealed yet, so the spin cannot be verified:"
                        " rotate the seed pair (POST /v1/me/fairness/rotate) and verify again")
        return _result(problems)
    seed = _revealed_seed(doc, commitment, problems)
    if seed is not None and client_seed is not None and nonce is not None and weights is not None:
        recomputed = spin_segment(seed, client_seed, nonce, weights)
        if index is not None and recomputed != index:
            problems.append(f"segment_index {index} recomputes as {recomputed}")
    return _result(problems)


def _picks(doc: dict[Any, Any], name: str, problems: list[str]) -> list[str] | None:
    value = doc.get(name)
    if not isinstance(value, list):
        problems.append(f"{name} is missing" if name not in doc else f"{name} must be a list")
        return None
    ids: list[str] = []
    for i, item in enumerate(value):
        public_id = item.get("participant") if isinstance(item, dict) else item
        if not isinstance(public_id, str) or not public_id:
            problems.append(f"{name}[{i}] must be a participant public id or an object with one in 'participant'")
            return None
        ids.append(public_id)
    return ids


def _beacon_value(doc: dict[Any, Any], problems: list[str]) -> str | None:
    beacon = doc.get("beacon")
    if not isinstance(beacon, dict):
        problems.append("beacon is missing" if "beacon" not in doc else "beacon must be an object")
        return None
    if not isinstance(beacon.get("source"), str) or not beacon.get("source"):
        problems.append("beacon.source must be a non-empty string")
    round_ = beacon.get("round")
    if not ((_is_int(round_) and round_ >= 0) or (isinstance(round_, str) and round_)):
        problems.append("beacon.round must be a whole number >= 0 or a non-empty string")
    value = beacon.get("value")
    if not isinstance(value, str) or not value or not _encodable(value):
        problems.append("beacon.value must be a non-empty string")
        return None
    return value


def _committed_at(doc: dict[Any, Any], problems: list[str]) -> None:
    value = _text(doc, "committed_at", problems)
    if value is None:
        return
    try:
        datetime.fromisoformat(value)
    except ValueError:
        problems.append("committed_at must be an ISO 8601 timestamp")


def _compare_picks(kind: str, published: list[str], recomputed: list[str], problems: list[str]) -> None:
    mismatches = [i for i in range(len(published)) if i >= len(recomputed) or published[i] != recomputed[i]]
    for i in mismatches[:_MAX_MISMATCH_LINES]:
        got = recomputed[i] if i < len(recomputed) else "nobody (no entrant left)"
        problems.append(f"{kind} {i + 1} is {published[i]} but recomputes as {got}")
    if len(mismatches) > _MAX_MISMATCH_LINES:
        problems.append(f"... and {len(mismatches) - _MAX_MISMATCH_LINES} more {kind}s differ")


def verify_sweepstakes_proof(doc: dict[str, Any], entries_file_bytes: bytes | None) -> VerifyResult:
    """Checks a sweepstakes proof; with the entries file, re-draws winners and alternates.
    Without it the draw cannot be recomputed, which is reported as a problem. Never raises."""
    if not isinstance(doc, dict):
        return _result(["the sweepstakes proof must be a JSON object"])
    problems: list[str] = []
    _check_algorithm(doc, problems)
    _text(doc, "sweepstakes_id", problems)
    commitment = _hex64(doc, "server_seed_hash", problems)
    _committed_at(doc, problems)
    seed = _revealed_seed(doc, commitment, problems)
    published_hash = _hex64(doc, "entries_hash", problems)
    total_tickets = _count(doc, "total_tickets", problems, most=MAX_TOTAL)
    entrant_count = _count(doc, "entrants", problems)
    beacon_value = _beacon_value(doc, problems)
    winners = _picks(doc, "winners", problems)
    alternates = _picks(doc, "alternates", problems)
    if winners is not None and alternates is not None:
        seen: set[str] = set()
        for public_id in winners + alternates:
            if public_id in seen:
                problems.append(f"{public_id} is picked more than once")
            seen.add(public_id)
    if entries_file_bytes is None:
        problems.append("no entries file given, so the draw cannot be recomputed:"
                        " pass the published entries file")
        return _result(problems)
    if not isinstance(entries_file_bytes, (bytes, bytearray, memoryview)):
        problems.append("the entries file must be bytes")
        return _result(problems)
    file_hash = entries_hash(bytes(entries_file_bytes))
    if published_hash is not None and file_hash != published_hash:
        problems.append(f"the entries file hashes to {file_hash}, not to entries_hash")
    try:
        entries = parse_entries_file(entries_file_bytes)
    except ValueError as exc:
        problems.append(f"the entries file is not canonical: {exc}")
        return _result(problems)
    file_total = sum(tickets for _, tickets in entries)
    if total_tickets is not None and file_total != total_tickets:
        problems.append(f"total_tickets is {total_tickets} but the entries file holds {file_total}")
    if entrant_count is not None and len(entries) != entrant_count:
        problems.append(f"entrants is {entrant_count} but the entries file lists {len(entries)}")
    if seed is None or published_hash is None or beacon_value is None or winners is None or alternates is None:
        return _result(problems)
    recomputed = draw(seed, published_hash, beacon_value, entries, len(winners) + len(alternates))
    _compare_picks("winner", winners, recomputed[:len(winners)], problems)
    _compare_picks("alternate", alternates, recomputed[len(winners):], problems)
    return _result(problems)
