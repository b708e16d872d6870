"""The projector's followers (wallet/journal.py `followed`): one whose reads fail is asked
again before its rows are left to its package's repair, and one that keeps failing does not
slow every batch."""

from __future__ import annotations

from typing import Any

import pytest

from wallet import journal
from wallet.journal import JournalEntry, Rows


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def noted(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(journal.asyncio, "sleep", noted)
    return waits


def _follower(answers: list[Any]) -> tuple[Any, list[str]]:
    """A follower answering `answers` in turn (an exception is raised), and the programs it was asked for."""
    asked: list[str] = []

    async def follow(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
        asked.append(program_id)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return follow, asked


ROWS = [Rows(table="feed_items", columns=("id",), rows=[("line",)])]


async def test_a_follower_that_fails_once_answers_at_the_next_attempt(no_waits: list[float]) -> None:
    follow, asked = _follower([ConnectionResetError("gone a moment"), ROWS])
    assert await journal.followed(follow, "prg_once", [], "orders") == ROWS
    assert asked == ["prg_once", "prg_once"] and no_waits == [journal.FOLLOWER_RETRY_SECONDS]


async def test_a_follower_that_keeps_failing_is_asked_once_a_batch_until_it_answers(no_waits: list[float]) -> None:
    attempts = journal.FOLLOWER_ATTEMPTS
    follow, asked = _follower([KeyError("bug")] * (attempts + 2) + [ROWS, KeyError("bug")] + [ROWS] * attempts)
    assert await journal.followed(follow, "prg_bug", [], "spins") == []  # every attempt, its waits
    assert len(asked) == attempts and len(no_waits) == attempts - 1
    assert await journal.followed(follow, "prg_bug", [], "spins") == []  # once, no wait
    assert await journal.followed(follow, "prg_bug", [], "spins") == []
    assert len(asked) == attempts + 2 and len(no_waits) == attempts - 1
    assert await journal.followed(follow, "prg_bug", [], "spins") == ROWS  # answers again
    assert await journal.followed(follow, "prg_bug", [], "spins") == ROWS  # a failure is asked again once more
    assert len(asked) == attempts + 5 and len(no_waits) == attempts
    # Another program's batches are asked as many times as ever.
    other, other_asked = _follower([KeyError("bug")] * attempts)
    assert await journal.followed(other, "prg_other", [], "spins") == []
    assert len(other_asked) == attempts
