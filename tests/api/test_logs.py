"""Access logs: one JSON line per request with its id and principal, never a credential;
and the session-wide secret scan (tests/log_capture.py) recognises what it must."""

from __future__ import annotations

import io
import logging
import re
import time

import msgspec
import pytest

from api.auth import Principal
from api.gate import log_access
from api.logs import JsonFormatter, configure_logging
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


@pytest.fixture
def production_logging():
    """configure_logging as `serve` runs it, its handler writing into a buffer; the test
    session's own handlers and level are put back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("info")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _scope(user: object = None) -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": "/v1/me/wallet", "user": user}


def test_the_access_line_written_straight_is_the_line_the_formatter_writes(production_logging):
    started = time.perf_counter()
    log_access(_scope(Principal("participant", program_id="prg_1", subject_id="pt_1")), 200, started, "req-1")
    log_access(_scope(), 401, started, "req-\u00e9\"2")
    direct = production_logging.getvalue().splitlines()
    assert len(direct) == 2

    # The same two lines through the logging module (another handler makes log_access build
    # records), formatted by JsonFormatter: equal but for the time stamp and the duration.
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("rw.access").addHandler(capture)
    try:
        log_access(_scope(Principal("participant", program_id="prg_1", subject_id="pt_1")), 200, started, "req-1")
        log_access(_scope(), 401, started, "req-\u00e9\"2")
    finally:
        logging.getLogger("rw.access").removeHandler(capture)
    assert len(records) == 2  # and the handler on the root wrote them too
    assert len(production_logging.getvalue().splitlines()) == 4
    for line, record in zip(direct, records):
        written, formatted = msgspec.json.decode(line), msgspec.json.decode(JsonFormatter().format(record))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", written.pop("ts"))
        formatted.pop("ts")
        # The duration differs too (measured anew); the rest is the same.
        assert re.fullmatch(r"GET /v1/me/wallet \d{3} \d+\.\dms", written["message"])
        assert written.pop("message").rsplit(" ", 1)[0] == formatted.pop("message").rsplit(" ", 1)[0]
        assert written == formatted
        assert list(msgspec.json.decode(line)) == list(msgspec.json.decode(JsonFormatter().format(record)))
    assert msgspec.json.decode(direct[0])["principal"] == "participant:pt_1"
    assert "principal" not in msgspec.json.decode(direct[1])
    assert msgspec.json.decode(direct[1])["message"].startswith("GET /v1/me/wallet 401 ")


def test_an_access_line_below_the_configured_level_is_not_written(production_logging):
    # RW_LOG_LEVEL=warning sets the root's level; this session's capture sets `rw`'s own.
    rw = logging.getLogger("rw")
    saved = rw.level
    rw.setLevel(logging.WARNING)
    try:
        log_access(_scope(), 200, time.perf_counter(), "req-1")
    finally:
        rw.setLevel(saved)
    assert production_logging.getvalue() == ""
    log_access(_scope(), 200, time.perf_counter(), "req-2")
    assert '"request_id":"req-2"' in production_logging.getvalue()
