"""Access logs: one JSON line per request with its id and principal, never a credential;
and the session-wide secret scan (tests/log_capture.py) recognises what it must."""

from __future__ import annotations

import logging

import msgspec
import pytest

from api.logs import JsonFormatter
from tests.factories import bearer, new_participant, new_program, tokens_for
from tests.log_capture import find_secrets


async def test_access_log_names_the_principal_never_the_secret(client, caplog: pytest.LogCaptureFixture):
    program = await new_program(client)
    person = await new_participant(client, program)
    tokens = await tokens_for(client, program, person["id"])
    key_id = program.admin_key.split(".")[1]
    with caplog.at_level(logging.INFO, logger="rw.access"):
        admin = await client.get("/v1/participants", headers={**program.headers, "X-Request-ID": "req-admin-1"})
        mine = await client.get("/v1/me/wallet", headers=bearer(tokens["access_token"]))
    assert admin.status_code == 200 and mine.status_code == 200
    lines = [msgspec.json.decode(JsonFormatter().format(r)) for r in caplog.records if r.name == "rw.access"]
    by_request = {line["request_id"]: line for line in lines}
    assert by_request["req-admin-1"]["principal"] == f"admin:{key_id}"
    assert "GET /v1/participants 200" in by_request["req-admin-1"]["message"]
    assert by_request[mine.headers["x-request-id"]]["principal"] == f"participant:{person['id']}"
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert program.admin_key not in text and tokens["access_token"] not in text
    assert tokens["refresh_token"] not in text
    assert list(find_secrets(text.splitlines())) == []


def test_the_scan_recognises_each_kind_of_secret():
    # Made-up values of each shape, checked as text: nothing here is logged.
    samples = {
        "API key": "key rwk.key_01abc.q7Zx0v3Yl9mN2pR5sT8uW1yB4cE6gH",
        "operator key": "rwo_Zk3v9Qp2Lm8Rt5Wx1Yb4Nc7",
        "refresh token": "rwr.Zk3v9Qp2Lm8Rt5Wx1Yb4Nc7Df0",
        "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwdGNfMSJ9.c2ln",
        "Stripe secret key": "sk_test_51Habcdefgh",
        "Stripe webhook secret": "whsec_abcdef123456",
        "bearer credential": "Authorization: Bearer abcdefghijklmnop1234",
    }
    for what, line in samples.items():
        assert [w for w, _ in find_secrets([line])] == [what], line
    assert [w for w, _ in find_secrets(["delivered GIFT-7788-9911"], known={"GIFT-7788-9911"})] == [
        "known secret value"]
    clean = ['{"message":"GET /v1/participants 200 3.1ms","principal":"admin:key_01abc"}',
             "send Authorization: Bearer <key or access token>"]
    assert list(find_secrets(clean, known={"9911"})) == []  # too short to search for
