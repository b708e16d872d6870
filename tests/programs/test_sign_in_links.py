"""Sign-in links for the phone app: one use, 15 minutes, stored hashed; opening the link
spends nothing; the refresh token then lives in an HttpOnly cookie that sign-out clears."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient

from programs import keys as program_keys
from tests.factories import another_worker, bearer, new_participant, new_program, set_program_status

pytestmark = pytest.mark.sql


@pytest.fixture
async def browser_like(settings, migrated) -> AsyncIterator[AsyncTestClient]:  # type: ignore[no-untyped-def]
    """A client of its own, so the cookies it collects stay with it."""
    async with another_worker(settings, public_url="http://rw.test") as other:
        yield other


@pytest.fixture
async def over_https(settings, migrated) -> AsyncIterator[AsyncTestClient]:  # type: ignore[no-untyped-def]
    async with another_worker(settings, public_url="https://rewards.example.com") as other:
        yield other


async def link_for(client, program, participant_id: str) -> dict:  # type: ignore[no-untyped-def]
    response = await client.post(f"/v1/participants/{participant_id}/sign-in-links", headers=program.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def token_of(url: str) -> str:
    return urlsplit(url).fragment


async def test_a_link_signs_in_once_and_starts_with_the_public_url(over_https) -> None:  # type: ignore[no-untyped-def]
    client = over_https
    program = await new_program(client)
    person = await new_participant(client, program)
    link = await link_for(client, program, person["id"])
    assert link["url"].startswith(f"https://rewards.example.com/app/{program.id}/sign-in#")
    assert link["expires_at"]

    signed = await client.post("/v1/auth/sign-in-link", json={"token": token_of(link["url"])})
    assert signed.status_code == 200, signed.text
    tokens = signed.json()
    me = await client.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert me.json()["id"] == person["id"]
    cookie = signed.headers["set-cookie"]
    assert "rw_refresh=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie.replace("strict", "Strict")
    assert "Path=/v1/auth/" in cookie and "Secure" in cookie

    again = await client.post("/v1/auth/sign-in-link", json={"token": token_of(link["url"])})
    assert again.status_code == 401
    assert again.json()["code"] == "unauthenticated"


async def test_opening_the_link_serves_the_page_and_spends_nothing(browser_like) -> None:  # type: ignore[no-untyped-def]
    client = browser_like
    program = await new_program(client)
    person = await new_participant(client, program)
    link = await link_for(client, program, person["id"])
    path = urlsplit(link["url"]).path
    for _ in range(3):  # a messenger's preview, a mail scanner, the person
        page = await client.get(path)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
    signed = await client.post("/v1/auth/sign-in-link", json={"token": token_of(link["url"])})
    assert signed.status_code == 200, signed.text


async def test_only_the_hash_of_the_token_is_stored(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    token = token_of((await link_for(client, program, person["id"]))["url"])
    found = [key async for key in redis.scan_iter(match=f"{program_keys.sign_in_link(program.id, '*')}")]
    assert len(found) == 1
    name = found[0].decode()
    assert token not in name and token.split(".")[-1] not in name
    assert name.endswith(hashlib.sha256(token.encode()).hexdigest())
    assert (await redis.get(found[0])).decode() == person["id"]
    assert 0 < await redis.ttl(found[0]) <= 15 * 60


async def test_an_expired_link_is_refused(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    token = token_of((await link_for(client, program, person["id"]))["url"])
    # Its 15 minutes passed: Redis let the key go.
    await redis.delete(program_keys.sign_in_link(program.id, hashlib.sha256(token.encode()).hexdigest()))
    refused = await client.post("/v1/auth/sign-in-link", json={"token": token})
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]


@pytest.mark.parametrize("token", ["nonsense", "rwl.", "rwl.prg_x.", "rwl.prg_unknown.abc"])
async def test_unknown_tokens_get_the_same_401(client, token: str) -> None:  # type: ignore[no-untyped-def]
    refused = await client.post("/v1/auth/sign-in-link", json={"token": token})
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"


async def test_a_deactivated_participant_cannot_use_a_link(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    token = token_of((await link_for(client, program, person["id"]))["url"])
    assert (await client.post(f"/v1/participants/{person['id']}/deactivate", headers=program.headers)).status_code == 200
    refused = await client.post("/v1/auth/sign-in-link", json={"token": token})
    assert refused.status_code == 401
    no_link = await client.post(f"/v1/participants/{person['id']}/sign-in-links", headers=program.headers)
    assert no_link.status_code == 404


async def test_a_suspended_program_refuses_the_link_and_leaves_it_unspent(browser_like) -> None:  # type: ignore[no-untyped-def]
    client = browser_like
    program = await new_program(client)
    person = await new_participant(client, program)
    token = token_of((await link_for(client, program, person["id"]))["url"])
    await set_program_status(client, program, "suspended")
    refused = await client.post("/v1/auth/sign-in-link", json={"token": token})
    assert refused.status_code == 409
    assert refused.json()["code"] == "program_suspended"
    await set_program_status(client, program, "active")
    assert (await client.post("/v1/auth/sign-in-link", json={"token": token})).status_code == 200


async def test_another_programs_participant_gets_no_link(client) -> None:  # type: ignore[no-untyped-def]
    program, other = await new_program(client), await new_program(client)
    person = await new_participant(client, other)
    refused = await client.post(f"/v1/participants/{person['id']}/sign-in-links", headers=program.headers)
    assert refused.status_code == 404


async def test_the_cookie_refreshes_and_sign_out_revokes_the_login(browser_like) -> None:  # type: ignore[no-untyped-def]
    client = browser_like
    program = await new_program(client)
    person = await new_participant(client, program)
    token = token_of((await link_for(client, program, person["id"]))["url"])
    signed = (await client.post("/v1/auth/sign-in-link", json={"token": token})).json()

    # The app sends `{}`: the cookie carries the refresh token, and comes back rotated.
    refreshed = await client.post("/v1/auth/refresh", json={})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != signed["refresh_token"]
    assert "rw_refresh=" in refreshed.headers["set-cookie"]
    assert (await client.get("/v1/me", headers=bearer(refreshed.json()["access_token"]))).status_code == 200

    out = await client.post("/v1/auth/sign-out", json={})
    assert out.status_code == 204
    assert "rw_refresh=" in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    # The cleared cookie is gone, and the token it held is revoked too.
    assert (await client.post("/v1/auth/refresh", json={})).status_code == 401
    stolen = await client.post("/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]})
    assert stolen.status_code == 401


async def test_refresh_in_the_body_still_works_without_a_cookie(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    issued = (await client.post(f"/v1/participants/{person['id']}/tokens", headers=program.headers)).json()
    response = await client.post("/v1/auth/refresh", json={"refresh_token": issued["refresh_token"]})
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert (await client.post("/v1/auth/refresh", json={})).status_code == 401


async def test_the_app_resumes_from_its_cookie_or_hears_it_is_signed_out(browser_like) -> None:  # type: ignore[no-untyped-def]
    client = browser_like
    signed_out = await client.post("/v1/auth/resume", json={})
    assert signed_out.status_code == 200 and signed_out.json() == {"signed_in": False}
    program = await new_program(client)
    person = await new_participant(client, program)
    token = token_of((await link_for(client, program, person["id"]))["url"])
    assert (await client.post("/v1/auth/sign-in-link", json={"token": token})).status_code == 200
    resumed = await client.post("/v1/auth/resume", json={})
    assert resumed.status_code == 200 and resumed.json()["signed_in"] is True
    assert "refresh_token" not in resumed.json(), "the app's refresh token stays in the cookie"
    assert (await client.get("/v1/me", headers=bearer(resumed.json()["access_token"]))).json()["id"] == person["id"]
    assert (await client.post("/v1/auth/sign-out", json={})).status_code == 204
    assert (await client.post("/v1/auth/resume", json={})).json() == {"signed_in": False}


async def test_sign_out_takes_the_refresh_token_in_the_body_or_the_access_token(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    first = (await client.post(f"/v1/participants/{person['id']}/tokens", headers=program.headers)).json()
    second = (await client.post(f"/v1/participants/{person['id']}/tokens", headers=program.headers)).json()
    out = await client.post("/v1/auth/sign-out", json={"refresh_token": first["refresh_token"]})
    assert out.status_code == 204
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).status_code == 401
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})).status_code == 200
    third = (await client.post(f"/v1/participants/{person['id']}/tokens", headers=program.headers)).json()
    everywhere = await client.post("/v1/auth/sign-out", headers=bearer(third["access_token"]))
    assert everywhere.status_code == 204
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})).status_code == 401
    assert (await client.post("/v1/auth/sign-out", headers=bearer("nonsense"))).status_code == 204
