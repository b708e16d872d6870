"""Rate limits (per address, per principal, the refresh endpoint), body size, CORS and the
security headers, each on a dedicated app with small limits so the shared client never trips."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from tests.factories import OPERATOR, away_from_a_window_edge, bearer, new_participant, new_program, random_ref

PROBLEM = "application/problem+json"


@asynccontextmanager
async def limited_app(settings: Any, **changes: Any) -> AsyncIterator[AsyncTestClient]:
    from api.app import create_app

    tuned = msgspec.structs.replace(settings, journal_consumer=False, background_tasks=False, **changes)
    async with AsyncTestClient(app=create_app(tuned), base_url="http://rw.test") as client:
        yield client


async def forget_counts(redis: Any) -> None:
    """The test client always calls from `testclient`: start each burst from zero."""
    async for key in redis.scan_iter(match="rw:rl:{testclient}*"):
        await redis.delete(key)
    # A principal's counters live under its program's hash tag (one slot with the gate's keys).
    async for key in redis.scan_iter(match="rw:{p:*}:rl:*"):
        await redis.delete(key)


async def burst(redis: Any, window: int, count: int, call: Callable[[], Awaitable[Any]]) -> list[Any]:
    """`count` calls that all fell in one rate-limit window (retried if a window boundary cut
    through them), so the test asserts counts, never timing."""
    for _ in range(10):
        await forget_counts(redis)
        started = int(time.time() // window)
        responses = [await call() for _ in range(count)]
        if int(time.time() // window) == started:
            return responses
    raise AssertionError("could not fit the burst in one window")


def assert_rate_limited(response: Any) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == "rate_limited" and body["status"] == 429
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert response.headers["ratelimit-remaining"] == "0"
    return retry_after


async def test_per_address_limit_trips_with_a_problem_document_then_recovers(settings, migrated, redis):
    window, limit = 3, 5
    async with limited_app(settings, rate_limit_per_ip=limit, rate_limit_window_seconds=window) as client:
        responses = await burst(redis, window, limit + 1,
                                lambda: client.get(f"/v1/public/sweepstakes/{random_ref('sw')}/proof"))
        assert [r.status_code for r in responses[:limit]] == [404] * limit
        assert responses[0].headers["ratelimit-limit"] == str(limit)
        retry_after = assert_rate_limited(responses[limit])
        assert retry_after <= window
        # Probes are never limited, even now.
        assert (await client.get("/health")).status_code == 200
        await asyncio.sleep(retry_after)
        assert (await client.get(f"/v1/public/sweepstakes/{random_ref('sw')}/proof")).status_code == 404


async def test_per_principal_limit_counts_each_key_on_its_own(settings, migrated, redis, client):
    program = await new_program(client)
    second = await client.post("/v1/admin-keys", json={"name": "console"}, headers=program.headers)
    assert second.status_code == 201, second.text
    other_key = second.json()["api_key"]
    window, limit = 5, 3
    async with limited_app(settings, rate_limit_per_principal=limit, rate_limit_window_seconds=window) as limited:
        responses = await burst(redis, window, limit + 2,
                                lambda: limited.get("/v1/participants", headers=program.headers))
        assert [r.status_code for r in responses[:limit]] == [200] * limit
        retry_after = assert_rate_limited(responses[limit])
        # Same address, another principal: its own budget.
        assert (await limited.get("/v1/participants", headers=bearer(other_key))).status_code == 200
        await asyncio.sleep(retry_after)
        assert (await limited.get("/v1/participants", headers=program.headers)).status_code == 200


async def test_participant_tokens_are_limited_per_participant(settings, migrated, redis, client):
    program = await new_program(client)
    person = await new_participant(client, program)
    tokens = (await client.post(f"/v1/participants/{person['id']}/tokens", headers=program.headers)).json()
    window, limit = 5, 2
    async with limited_app(settings, rate_limit_per_principal=limit, rate_limit_window_seconds=window) as limited:
        responses = await burst(redis, window, limit + 1,
                                lambda: limited.get("/v1/me/wallet", headers=bearer(tokens["access_token"])))
        assert [r.status_code for r in responses[:limit]] == [200] * limit
        assert_rate_limited(responses[limit])


async def test_refresh_endpoint_is_stricter_than_the_rest(settings, migrated, redis):
    window = 5
    async with limited_app(settings, rate_limit_refresh=2, rate_limit_per_ip=100,
                           rate_limit_window_seconds=window) as client:
        async def both() -> tuple[Any, Any]:
            refresh = await client.post("/v1/auth/refresh", json={"refresh_token": "rwr.not-a-real-one"})
            other = await client.get(f"/v1/public/sweepstakes/{random_ref('sw')}/proof")
            return refresh, other

        pairs = await burst(redis, window, 3, both)
        assert all(p[0].status_code in (400, 401, 404) for p in pairs[:2]), [p[0].text for p in pairs]
        assert_rate_limited(pairs[2][0])
        # The rest of the API still answers this address.
        assert [p[1].status_code for p in pairs] == [404, 404, 404]


async def test_failed_credentials_count_against_the_address(settings, migrated, redis, client):
    program = await new_program(client)
    window, limit = 5, 3
    async with limited_app(settings, rate_limit_auth_failures=limit, rate_limit_window_seconds=window) as limited:
        async def valid_then_bad() -> tuple[Any, Any]:
            # Authenticated requests count against their principal, not the address.
            good = await limited.get("/v1/participants", headers=program.headers)
            bad = await limited.get("/v1/participants", headers=bearer("rwk.nope.guess"))
            return good, bad

        async def spend_then_try_a_good_key() -> tuple[list[tuple[Any, Any]], Any]:
            pairs = [await valid_then_bad() for _ in range(limit + 1)]
            return pairs, await limited.get("/v1/participants", headers=program.headers)

        # One window holds the whole sequence, the good key's last request included.
        [(pairs, after)] = await burst(redis, window, 1, spend_then_try_a_good_key)
        assert [p[0].status_code for p in pairs] == [200] * (limit + 1)
        assert [p[1].status_code for p in pairs[:limit]] == [401] * limit
        retry_after = assert_rate_limited(pairs[limit][1])
        # Spent on failures: the address is refused before its credentials are even checked.
        assert_rate_limited(after)
        await asyncio.sleep(retry_after)
        assert (await limited.get("/v1/participants", headers=program.headers)).status_code == 200


async def test_by_default_an_address_gets_30_bad_credentials_a_minute(settings, migrated, redis, client):
    from api.settings import load_settings

    defaults = load_settings({})
    assert (defaults.rate_limit_auth_failures, defaults.rate_limit_window_seconds) == (30, 60)
    program = await new_program(client)
    async with limited_app(settings, rate_limit_auth_failures=defaults.rate_limit_auth_failures,
                           rate_limit_per_ip=defaults.rate_limit_per_ip,
                           rate_limit_window_seconds=defaults.rate_limit_window_seconds) as limited:
        async def guess_then_try_the_right_key() -> tuple[list[Any], Any]:
            guesses = [await limited.get("/v1/participants", headers=bearer(f"rwk.key_x.{random_ref()}"))
                       for _ in range(31)]
            return guesses, await limited.get("/v1/participants", headers=program.headers)

        # One minute's window holds the whole sequence, the right key's request included.
        [(guesses, right_key)] = await burst(redis, 60, 1, guess_then_try_the_right_key)
        assert [r.status_code for r in guesses[:30]] == [401] * 30
        assert_rate_limited(guesses[30])
        # Locked out, whatever it sends now (a right guess must not show), until the minute ends.
        assert_rate_limited(right_key)
        # Public reads are not failures: their own, larger budget.
        assert (await limited.get(f"/v1/public/sweepstakes/{random_ref('sw')}/proof")).status_code == 404
    await forget_counts(redis)


async def test_default_limits_do_not_bother_normal_use(client):
    response = await client.get("/v1/participants", headers=OPERATOR)
    assert response.status_code != 429
    assert int(response.headers["ratelimit-remaining"]) > 100


# --- body size ----------------------------------------------------------------------------


async def test_oversized_body_gets_413_problem_document(client, settings):
    program = await new_program(client)
    body = b'{"participant_id": "x", "points": 1, "reason": "' + b"a" * settings.max_body_bytes + b'"}'
    response = await client.post("/v1/points/grants", content=body,
                                 headers={**program.headers, "Idempotency-Key": random_ref(),
                                          "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "payload_too_large"


async def test_body_limit_is_a_setting(settings, migrated, client):
    program = await new_program(client)
    async with limited_app(settings, max_body_bytes=2048) as limited:
        big = {"external_id": random_ref(), "display_name": "x" * 4000}
        response = await limited.post("/v1/participants", json=big, headers=program.headers)
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        small = {"external_id": random_ref(), "display_name": "Pat"}
        assert (await limited.post("/v1/participants", json=small, headers=program.headers)).status_code == 201


# --- headers and CORS -----------------------------------------------------------------------


async def test_security_headers_on_every_answer(client):
    for path in ("/health", "/v1/no-such-thing", "/v1/participants"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert "default-src 'none'" in response.headers["content-security-policy"], path
        assert "strict-transport-security" not in response.headers


async def test_authenticated_answers_are_not_cached(client):
    program = await new_program(client)
    response = await client.get("/v1/participants", headers=program.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_docs_pages_load_everything_from_this_server(client):
    """Offline, or behind a firewall, /schema still renders: no script, style or image from
    another host, and the page's policy names none."""
    for path in ("/schema", "/schema/swagger"):
        page = await client.get(path)
        assert page.status_code == 200, path
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "http" not in policy, path
        referenced = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        assert referenced and all(url.startswith("/schema/") for url in referenced), referenced
        for url in referenced:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].split(";")[0] in (
                "application/javascript", "text/javascript", "text/css", "image/png"), url
            assert len(asset.content) > 1000, url
    document = await client.get("/schema/openapi.yaml")
    assert document.status_code == 200 and "openapi:" in document.text


async def test_hsts_and_cors_follow_settings(settings, migrated):
    async with limited_app(settings, hsts_seconds=31_536_000, cors_origins="https://console.example.com") as client:
        response = await client.get("/health")
        assert response.headers["strict-transport-security"].startswith("max-age=31536000")
        allowed = await client.options("/v1/me/wallet", headers={
            "Origin": "https://console.example.com", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert allowed.status_code in (200, 204)
        assert allowed.headers["access-control-allow-origin"] == "https://console.example.com"
        refused = await client.options("/v1/me/wallet", headers={
            "Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"})
        assert refused.headers.get("access-control-allow-origin") != "https://evil.example.net"


async def test_without_allowed_origins_no_origin_is_allowed(settings, migrated):
    async with limited_app(settings, cors_origins=None) as client:
        for method in (client.options, client.get):
            answer = await method("/v1/me/wallet", headers={
                "Origin": "https://console.example.com", "Access-Control-Request-Method": "GET"})
            assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("value", ["-1", "many"])
def test_bad_limit_setting_names_the_variable(value):
    from api.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="RW_RATE_LIMIT_PRINCIPAL"):
        load_settings({"RW_RATE_LIMIT_PRINCIPAL": value})


# --- forwarded client addresses ---------------------------------------------------------------


def _serve(extra_env: dict[str, str]) -> tuple[Any, str]:
    """`reward-wallet serve` on the session's stores, with a budget of 3 failures a window."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    from tests.conftest import free_port

    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in ("RW_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS")}
    env = {**inherited, "RW_RATE_LIMIT_AUTH_FAILURES": "3", "RW_RATE_LIMIT_WINDOW": str(AUTH_WINDOW), **extra_env}
    server = subprocess.Popen([str(Path(sys.executable).parent / "reward-wallet"), "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
        time.sleep(0.1)


def _stop(server: Any) -> None:
    import os
    import signal

    os.killpg(server.pid, signal.SIGINT)
    server.wait(timeout=30)


async def _forget_addresses(redis: Any) -> None:
    async for key in redis.scan_iter(match="rw:rl:*"):
        if key.startswith((b"rw:rl:{127.0.0.1}", b"rw:rl:{203.0.113.")):
            await redis.delete(key)


AUTH_WINDOW = 60  # RW_RATE_LIMIT_WINDOW of the servers `_serve` starts


def _guess(url: str, forwarded_for: str) -> int:
    import httpx

    return httpx.get(url + "/v1/participants", timeout=10, headers={
        "Authorization": f"Bearer rwk.key_x.{random_ref()}", "X-Forwarded-For": forwarded_for}).status_code


async def test_an_untrusted_clients_forwarded_for_does_not_change_the_limited_address(settings, migrated, redis):
    await _forget_addresses(redis)
    server, url = _serve({})
    try:
        # Each guess claims another address; the server counts the peer all the same.
        await away_from_a_window_edge(AUTH_WINDOW)
        answers = [_guess(url, f"203.0.113.{n}") for n in range(1, 5)]
        assert answers == [401, 401, 401, 429]
    finally:
        _stop(server)
        await _forget_addresses(redis)


async def test_a_named_proxys_forwarded_for_names_the_client(settings, migrated, redis):
    await _forget_addresses(redis)
    server, url = _serve({"RW_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    try:
        # Behind a trusted proxy, each client has its own budget...
        assert [_guess(url, f"203.0.113.{n}") for n in range(1, 5)] == [401] * 4
        # ...and one client's guesses are counted as theirs.
        await away_from_a_window_edge(AUTH_WINDOW)
        assert [_guess(url, "203.0.113.9") for _ in range(4)] == [401, 401, 401, 429]
    finally:
        _stop(server)
        await _forget_addresses(redis)


@pytest.mark.parametrize("value", ["proxy.example.com", "10.0.0.0/33", "1.2.3"])
def test_a_bad_trusted_proxy_setting_names_the_variable(value):
    from api.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="RW_TRUSTED_PROXIES"):
        load_settings({"RW_TRUSTED_PROXIES": value})
    assert load_settings({"RW_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16"}).trusted_proxy_list == [
        "10.0.0.1/32", "192.168.0.0/16"]
    assert load_settings({}).trusted_proxy_list == []
