"""Secrets at rest are sealed with AES-256-GCM-SIV under a key derived from the settings' key, and
what earlier builds sealed with Fernet still opens: a gift card uploaded before the change is
handed out readable after it. Nothing sealed under another key, or changed, opens."""

from __future__ import annotations

import base64
import os
from typing import Any

import msgspec
import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st

from fulfillment.sealing import PREFIX, Sealer
from fulfillment.tables import PoolCode
from tests.factories import redeem, shop, shopper, upload_codes
from tests.log_capture import made_up_values

KEY = Fernet.generate_key().decode()
SEALER = Sealer(KEY)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), st.text(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10)


@hypothesis_settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_what_is_sealed_opens_to_the_same_value(value: Any) -> None:
    with made_up_values():
        token = SEALER.seal(value)
    assert token.startswith(PREFIX)
    assert SEALER.open(token) == value


def test_a_sealed_card_shows_none_of_its_code() -> None:
    token = SEALER.seal({"code": "GIFT CARD 4821 7730", "pin": "PIN 0420"})
    assert "GIFT" not in token and "4821" not in token and "0420" not in token and "code" not in token


def test_a_card_code_sealed_twice_reads_differently_each_time() -> None:
    code = {"code": "ABCD-EFGH-IJKL", "pin": "0420"}
    first, second = SEALER.seal(code), SEALER.seal(code)
    assert first != second
    assert SEALER.open(first) == SEALER.open(second) == code


def test_a_secret_an_earlier_build_sealed_with_fernet_still_opens() -> None:
    earlier = Fernet(KEY.encode()).encrypt(b'{"code":"OLD-CARD-0001"}').decode()
    assert earlier.startswith("gAAAAA")
    assert SEALER.open(earlier) == {"code": "OLD-CARD-0001"}


@pytest.mark.parametrize("fmt", ["s2", "fernet"])
def test_a_secret_sealed_under_another_key_does_not_open(fmt: str) -> None:
    other = Fernet.generate_key().decode()
    token = Sealer(other).seal("secret") if fmt == "s2" else Fernet(other.encode()).encrypt(b'"secret"').decode()
    with pytest.raises(ValueError, match="sealed with another key"):
        SEALER.open(token)


def test_a_changed_or_cut_token_does_not_open() -> None:
    token = SEALER.seal({"code": "ABCD"})
    raw = bytearray(base64.urlsafe_b64decode(token[len(PREFIX):]))
    for where in (0, 12, len(raw) - 1):  # the nonce, the ciphertext, the tag
        changed = bytearray(raw)
        changed[where] ^= 1
        with pytest.raises(ValueError):
            SEALER.open(PREFIX + base64.urlsafe_b64encode(bytes(changed)).decode())
    for broken in (PREFIX, PREFIX + "not base64!", PREFIX + base64.urlsafe_b64encode(os.urandom(20)).decode(),
                   token[:-6]):
        with pytest.raises(ValueError):
            SEALER.open(broken)


def test_a_key_that_is_not_a_fernet_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError):
        Sealer("too-short")


@pytest.mark.sql
async def test_a_card_uploaded_before_the_change_is_handed_out_readable(client, settings) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    _, me = await shopper(client, program, 10_000)
    await upload_codes(client, program, item["id"], ["OLD-CARD-0001"])
    # Stored as an earlier build stored it: the same credentials, sealed with Fernet, same key.
    stored = await PoolCode.select(PoolCode.id, PoolCode.secret).where(PoolCode.item_id == item["id"]).first().run()
    assert stored["secret"].startswith(PREFIX)
    credentials = Sealer(settings.encryption_key).open(stored["secret"])
    earlier = Fernet(settings.encryption_key.encode()).encrypt(msgspec.json.encode(credentials)).decode()
    await PoolCode.update({PoolCode.secret: earlier}).where(PoolCode.id == stored["id"]).run()
    order = await redeem(client, me, item["id"])
    assert order.status_code == 201, order.text
    assert order.json()["credentials"]["code"] == "OLD-CARD-0001"
