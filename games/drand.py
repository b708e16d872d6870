"""The drand beacon a sweepstakes draw uses when RW_DRAND_URL is set: the first round whose
time is after the close, so nobody (the operator included) could know it when entries froze.

drand's HTTP API: GET {url}/info -> {genesis_time, period, ...}; GET {url}/public/{round}
-> {round, randomness, ...}; round r is emitted at genesis_time + (r - 1) * period.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import httpx
import msgspec

from kernel.errors import Conflict, DomainError


class BeaconUnavailable(DomainError):
    """The beacon service did not answer as drand does: a retry later may succeed."""

    code = "unavailable"


class ChainInfo(msgspec.Struct, frozen=True):
    genesis_time: int
    period: int


class Round(msgspec.Struct, frozen=True):
    round: int
    randomness: str


def first_round_after(info: ChainInfo, moment: datetime) -> int:
    """The smallest round r with genesis + (r - 1) * period strictly after `moment`."""
    elapsed = moment.timestamp() - info.genesis_time
    if elapsed < 0:
        return 1
    return math.floor(elapsed / info.period) + 2


def round_time(info: ChainInfo, number: int) -> datetime:
    return datetime.fromtimestamp(info.genesis_time + (number - 1) * info.period, tz=timezone.utc)


async def beacon_after(url: str, moment: datetime, timeout: float = 10.0) -> dict[str, object]:
    """{source, round, value} of the first round after `moment`; Conflict if it is not out yet."""
    base = url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            info = msgspec.json.decode((await _get(client, f"{base}/info")), type=ChainInfo)
            if info.period <= 0:
                raise BeaconUnavailable("the drand chain info has a period of 0")
            number = first_round_after(info, moment)
            due = round_time(info, number)
            if due > datetime.now(timezone.utc):
                raise Conflict(f"drand round {number} (the first after the close) comes out at "
                               f"{due.isoformat()}; draw after that", retry_at=due.isoformat())
            found = msgspec.json.decode(await _get(client, f"{base}/public/{number}"), type=Round)
    except (httpx.HTTPError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BeaconUnavailable(f"the drand beacon at {base} did not answer usably ({type(exc).__name__})") from None
    if found.round != number or not found.randomness:
        raise BeaconUnavailable(f"the drand beacon answered round {found.round} for round {number}")
    return {"source": f"drand {base}", "round": number, "value": found.randomness}


async def _get(client: httpx.AsyncClient, url: str) -> bytes:
    response = await client.get(url)
    if response.status_code != 200:
        raise BeaconUnavailable(f"GET {url} answered {response.status_code}")
    return response.content
