"""A journal entry read back from Valkey: what the projector turns into a ledger row.

The projector's client answers bytes and a decoding client (tests, tools) answers text; both
must read the same entry, and an entry the ledger cannot hold must be refused with its
reason (it is set aside as a dead letter, and the projection goes on)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.money import MAX_BALANCE
from wallet.journal import BadEntry, JournalEntry, parse_entry

points = st.integers(min_value=-MAX_BALANCE, max_value=MAX_BALANCE)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
legs = st.lists(st.tuples(text, text, st.integers(min_value=0, max_value=MAX_BALANCE)), max_size=4)


@pytest.fixture(scope="module")
def decoding(valkey_url: str) -> Any:
    client = redis.Redis.from_url(valkey_url, decode_responses=True)
    yield client
    client.close()


def written(valkey: Any, fields: dict[str, str]) -> tuple[Any, Any]:
    """`fields` appended to a stream of their own; answers the stream and the entry's id."""
    stream = f"test:journal:{uuid.uuid4().hex}"
    return stream, valkey.xadd(stream, fields)


def read_both(valkey: Any, decoding: Any, fields: dict[str, str]) -> tuple[Any, Any]:
    """The entry as the projector's bytes client and as a decoding client read it."""
    stream, _ = written(valkey, fields)
    (raw_id, raw), = valkey.xrange(stream)
    (text_id, text_fields), = decoding.xrange(stream)
    assert isinstance(raw_id, bytes) and isinstance(text_id, str)
    return parse_entry(raw_id, raw), parse_entry(text_id, text_fields)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tx=text.filter(bool), kind=text.filter(bool), participant=text, net=points, earned=points, spent=points,
       ref=text, meta=text, moved=legs, ms=st.integers(min_value=0, max_value=4_102_444_800_000))
def test_both_clients_read_the_entry_that_was_written(valkey: Any, decoding: Any, tx: str, kind: str, participant: str,
                                                      net: int, earned: int, spent: int, ref: str, meta: str,
                                                      moved: list[tuple[str, str, int]], ms: int) -> None:
    import msgspec

    fields = {"tx": tx, "kind": kind, "participant": participant, "points": str(net), "ref": ref, "meta": meta,
              "legs": msgspec.json.encode(moved).decode(), "ts": str(ms), "earned": str(earned), "spent": str(spent)}
    from_bytes, from_text = read_both(valkey, decoding, fields)
    assert from_bytes == from_text
    assert from_bytes == JournalEntry(
        stream_id=from_text.stream_id, transaction_id=tx, kind=kind, participant_id=participant or None, points=net,
        earned=earned, spent=spent, reference=ref or None, metadata=meta, legs=moved,
        created_at=datetime.fromtimestamp(ms / 1000, tz=timezone.utc))


def test_fields_an_older_entry_lacks_take_their_defaults(valkey: Any, decoding: Any) -> None:
    from_bytes, from_text = read_both(valkey, decoding, {"tx": "tx_old", "kind": "grant", "ts": "1780000000000"})
    assert from_bytes == from_text
    assert (from_bytes.participant_id, from_bytes.points, from_bytes.earned, from_bytes.spent, from_bytes.reference,
            from_bytes.metadata, from_bytes.legs) == (None, 0, 0, 0, None, "{}", [])


GOOD = {"tx": "tx_1", "kind": "award", "participant": "par_1", "points": "25", "ref": "", "meta": "{}",
        "legs": '[["budget","available:par_1",25]]', "ts": "1780000000000", "earned": "25", "spent": "0"}


@pytest.mark.parametrize(("change", "reason"), [
    ({"tx": None}, "KeyError: 'tx'"),
    ({"ts": None}, "KeyError: 'ts'"),
    # what cjson wrote before the exact writer:
    ({"points": "9.223372036854e+18"}, "ValueError: invalid literal for int() with base 10: '9.223372036854e+18'"),
    ({"legs": '[["budget","available:x",9.2e+18]]'}, "ValidationError"),
    ({"legs": "not json"}, "DecodeError"),
    ({"earned": str(MAX_BALANCE + 1)}, f"a number is past 2^53 - 1 in size ({MAX_BALANCE + 1})"),
    ({"points": str(-MAX_BALANCE - 1)}, f"a number is past 2^53 - 1 in size ({-MAX_BALANCE - 1})"),
    ({"legs": f'[["budget","a",{MAX_BALANCE + 5}]]'}, f"a number is past 2^53 - 1 in size ({MAX_BALANCE + 5})"),
    ({"legs": '[["budget","a",-1]]'}, "a leg moves a negative amount"),
])
def test_an_entry_the_ledger_cannot_hold_is_refused_with_its_reason(valkey: Any, decoding: Any,
                                                                    change: dict[str, str | None], reason: str) -> None:
    fields = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    stream, _ = written(valkey, fields)
    for client in (valkey, decoding):
        (stream_id, read), = client.xrange(stream)
        with pytest.raises(BadEntry) as refused:
            parse_entry(stream_id, read)
        assert str(refused.value).startswith(reason)


def test_digits_python_reads_as_text_are_read_by_both_clients(valkey: Any, decoding: Any) -> None:
    from_bytes, from_text = read_both(valkey, decoding, {**GOOD, "points": "\u0662\u0665", "earned": "\u00a025"})
    assert from_bytes == from_text
    assert (from_bytes.points, from_bytes.earned) == (25, 25)
