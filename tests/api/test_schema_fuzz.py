"""Schemathesis against the app's own OpenAPI over real HTTP: never a 500, and every error
answer is an RFC 9457 problem document with a code.

Each operation's request strategy (from the published schema) runs under hypothesis with
a bounded number of examples: about a minute for the whole API on the 2-core CI machine
(`RW_FUZZ_EXAMPLES=200` for a longer hunt). Every 500 it has found has a deterministic test
of its own next to the code it broke (tests/api/test_problems.py, tests/catalog/...).

SQLite pass only: it exercises input handling, which does not depend on the SQL engine, and
a second minute on Postgres would find nothing the SQLite pass does not (values only
Postgres refuses have their own tests in test_problems.py).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.factories import OPERATOR, random_ref

# Deliberately not marked `sql`: `make test` runs it in the SQLite pass only.
pytestmark = pytest.mark.skipif(os.environ.get("RW_TEST_DB") == "postgres", reason="runs in the SQLite pass")

EXAMPLES_PER_OPERATION = int(os.environ.get("RW_FUZZ_EXAMPLES", "9"))


def credentials_for(path: str, admin: dict[str, str], participant: dict[str, str]) -> dict[str, str]:
    if path.startswith("/v1/me"):
        return participant
    if path == "/v1/programs" or path.startswith("/v1/programs/"):
        return OPERATOR
    return admin


def test_no_request_gets_a_500_and_errors_are_problem_documents(live_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server.url) as http:
        created = http.post("/v1/programs", json={"name": random_ref("fuzz")}, headers=OPERATOR).json()
        admin = {"Authorization": f"Bearer {created['admin_key']}"}
        person = http.post("/v1/participants", json={"external_id": "f", "display_name": "F"}, headers=admin).json()
        tokens = http.post(f"/v1/participants/{person['id']}/tokens", headers=admin).json()
    participant = {"Authorization": f"Bearer {tokens['access_token']}"}
    schema = schemathesis.openapi.from_url(live_server.url + "/schema/openapi.json")
    failures: list[str] = []
    statuses: list[int] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def exercise(case: Any) -> None:
            headers = {**(case.headers or {}), **credentials_for(case.path, admin, participant)}
            response = case.call(base_url=live_server.url, headers=headers)
            where = f"{case.method} {case.formatted_path}"
            statuses.append(response.status_code)
            if response.status_code >= 500:
                # Enough to write the deterministic regression test this failure needs.
                failures.append(f"{where} -> {response.status_code}: {response.text[:300]}\n"
                                f"  query={case.query!r:.300} body={case.body!r:.1000}")
            elif response.status_code >= 400:
                content_type = (response.headers.get("content-type") or [""])[0]
                if not content_type.startswith("application/problem+json"):
                    failures.append(f"{where} -> {response.status_code} without a problem document")
                else:
                    body = response.json()
                    if body.get("status") != response.status_code or not body.get("code"):
                        failures.append(f"{where} -> malformed problem {body}")

        exercise()
        tried += 1
    assert tried >= 20
    assert len(statuses) >= tried * 5, "hypothesis generated too few requests to mean anything"
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert failures == [], "\n".join(failures[:20])
