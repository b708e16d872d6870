"""Liveness and readiness, as monitors and load balancers probe them."""

from __future__ import annotations

from typing import Any


async def test_health_answers_get_with_ok(client: Any) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_health_answers_head_with_no_body(client: Any) -> None:
    response = await client.head("/health")
    assert response.status_code == 200
    assert response.content == b""


async def test_ready_reports_both_stores(client: Any) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok", "sql": "ok"}
