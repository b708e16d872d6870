"""The one Redis function library (kernel/lua_library.py): the prelude and each package's part
assemble into `rw_wallet` with every function, a part that strays from its declaration is
refused before anything loads, and the library loads into Valkey."""

from __future__ import annotations

import pytest

from kernel.lua_library import PACKAGES, LuaLibraryError, LuaPart, assemble, library
from kernel.redis_functions import FunctionStore, connect
from wallet.keys import LUA_PART as WALLET_PART

FUNCTIONS = {"rw_award_batch", "rw_balance", "rw_board_score", "rw_capture", "rw_deduct", "rw_free_spins",
             "rw_gate", "rw_gated", "rw_grant", "rw_grant_batch", "rw_hold", "rw_release", "rw_reverse", "rw_seed_seal",
             "rw_seed_swap",
             "rw_spin", "rw_sw_close", "rw_sw_enter", "rw_transfer", "rw_void",
             "rw_pool_redeem", "rw_pool_take", "rw_pool_load", "rw_pool_retake", "rw_pool_return", "rw_partner_hold",
             "rw_tax_count"}


async def test_the_parts_assemble_into_one_library_that_loads(valkey_url: str) -> None:
    built = library()
    assert PACKAGES == ("wallet", "games", "programs", "fulfillment")
    assert built.text.startswith("#!lua name=rw_wallet\n")
    assert built.functions == FUNCTIONS
    assert built.gateable == {"rw_balance", "rw_grant", "rw_deduct", "rw_spin", "rw_pool_redeem", "rw_partner_hold"}
    client = connect(valkey_url)
    try:
        await FunctionStore(client).load_functions()
        [listed] = await client.function_list(library="rw_wallet")
        functions = dict(zip(listed[::2], listed[1::2]))[b"functions"]
        assert {dict(zip(f[::2], f[1::2]))[b"name"].decode() for f in functions} == FUNCTIONS
        assert await client.fcall("rw_balance", 1, "rw:{p:loader-test}:w:nobody") == b'{"open":0}'
    finally:
        await client.aclose()


PRELUDE = 'local function fail(code) return code end\nlocal function journal() end\n'
FILES = {
    ("a", "a.lua"): '-- journal() in a comment is no use\nlocal function mine() return fail("journal()") end\n'
                    'redis.register_function("rw_a", function() return mine() end)',
    ("b", "uses_a.lua"): 'redis.register_function("rw_b", function() return mine() end)',
    ("b", "again.lua"): 'local function fail() end',
    ("b", "journal.lua"): 'redis.register_function("rw_b", function() journal() return "" end)',
}


def _assemble(*parts: LuaPart) -> None:
    assemble(parts, prelude=PRELUDE, read=lambda package, file: FILES[package, file])


def test_a_part_that_strays_from_its_declaration_is_refused() -> None:
    a = LuaPart(package="a", files=("a.lua",), uses=frozenset({"fail"}))
    _assemble(a)  # comments and strings are not uses
    cases = [
        (LuaPart(package="b", files=("journal.lua",), uses=frozenset()), r"b/journal.lua uses prelude helper\(s\) journal"),
        (LuaPart(package="b", files=("journal.lua",), uses=frozenset({"journal", "fail"})), "declares fail but never"),
        (LuaPart(package="b", files=("journal.lua",), uses=frozenset({"journal", "nope"})), "declares nope, not in the"),
        (LuaPart(package="b", files=("uses_a.lua",), uses=frozenset()), "uses mine of a's part"),
        (LuaPart(package="b", files=("again.lua",), uses=frozenset()), "defines fail again"),
    ]
    for part, refusal in cases:
        with pytest.raises(LuaLibraryError, match=refusal):
            _assemble(a, part)
    # The product's own parts are scanned the same way: the ledger calls the prelude's journal.
    with pytest.raises(LuaLibraryError, match=r"wallet/functions.lua uses prelude helper\(s\) journal that"):
        assemble([LuaPart(package="wallet", files=WALLET_PART.files, uses=WALLET_PART.uses - {"journal"})])
