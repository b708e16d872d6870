"""A spin's day in the program's calendar (daily caps reset at the zone's midnight): the
kept answer for the minute is the answer worked out afresh, at every midnight and every
change of the clocks, in zones whose offsets are quarter and half hours too."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from games.spins import local_day

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kathmandu", "America/St_Johns",
         "Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago", "Asia/Tehran"]


def afresh(zone: str, now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=ZoneInfo(zone)).strftime("%Y-%m-%d")


def instants(zone: str) -> list[int]:
    """Moments around each local midnight and each change of offset in 2026."""
    tz = ZoneInfo(zone)
    moments: list[int] = []
    day = datetime(2026, 1, 1, tzinfo=tz)
    previous_offset = day.utcoffset()
    for _ in range(366):
        midnight_ms = int(day.timestamp() * 1000)
        moments += [midnight_ms + d for d in (-60_001, -60_000, -1, 0, 1, 59_999, 60_000)]
        for hour in range(24):  # where the offset changes within the day
            at = day + timedelta(hours=hour)
            if at.utcoffset() != previous_offset:
                change_ms = int(at.timestamp() * 1000)
                moments += [change_ms + d for d in range(-3_600_000, 3_600_001, 900_000)]
                previous_offset = at.utcoffset()
        day = datetime.combine((day + timedelta(days=1)).date(), datetime.min.time(), tzinfo=tz)
    return moments


@pytest.mark.parametrize("zone", ZONES)
def test_the_kept_day_is_the_day_worked_out_afresh(zone: str) -> None:
    moments = instants(zone)
    for now_ms in moments + moments[::-1]:  # forwards and back: every kept answer is asked again
        assert local_day(zone, now_ms) == afresh(zone, now_ms), (zone, now_ms)


def test_zones_kept_side_by_side_answer_their_own_day() -> None:
    now_ms = int(datetime(2026, 3, 1, 23, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    assert local_day("UTC", now_ms) == "2026-03-01"
    assert local_day("Asia/Kathmandu", now_ms) == "2026-03-02"
    assert local_day("UTC", now_ms + 1) == "2026-03-01"
    assert local_day("America/New_York", now_ms) == "2026-03-01"
