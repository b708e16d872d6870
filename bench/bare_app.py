"""The HTTP baseline for bench/wallet.py and bench/profile.py: a bare Litestar app with one
POST and one GET endpoint.

The POST decodes a small msgspec Struct body and answers a msgspec Struct, the GET answers
a wallet-shaped Struct; nothing else: no middleware, no auth, no stores. Served exactly like the API (uvicorn, one worker), it
is the floor the wallet's deduction endpoint is compared with.

    python -m uvicorn bench.bare_app:app_factory --factory --port 8001 --workers 1
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, get, post


class Deduction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    participant_id: str
    points: int
    reason: str
    reference: str | None = None


class Balance(msgspec.Struct, frozen=True):
    available: int
    held: int


class Accepted(msgspec.Struct, frozen=True):
    transaction_id: str
    participant_id: str
    points: int
    balance: Balance


# Same path as the wallet endpoint, so the load generator sends byte-identical requests.
@post("/v1/points/deductions")
async def deduct(data: Deduction) -> Accepted:
    return Accepted(transaction_id="tx_bare", participant_id=data.participant_id, points=data.points,
                    balance=Balance(available=0, held=0))


class Wallet(msgspec.Struct, frozen=True):
    available: int
    held: int
    lifetime_earned: int
    lifetime_spent: int
    expiring: list[int]


# Same path as the participant's wallet read (bench/profile.py's GET baseline).
@get("/v1/me/wallet")
async def my_wallet() -> Wallet:
    return Wallet(available=1000, held=0, lifetime_earned=1000, lifetime_spent=0, expiring=[])


def app_factory() -> Litestar:
    return Litestar(route_handlers=[deduct, my_wallet], debug=False)
