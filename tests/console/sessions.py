"""Signing a browser into the console over HTTP for the console's tests: an invite accepted,
the sign-in form with its pre-session token, and GETs and POSTs with a session cookie (the
shared test client's jar emptied after each, so no test rides on another's cookie)."""

from __future__ import annotations

import re
from typing import Any

from tests.factories import ProgramHandle, random_ref

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"{random_ref('person')}@console.example"


async def invite(client: Any, program: ProgramHandle, email: str, role: str = "owner") -> dict[str, Any]:
    response = await client.post(follow_redirects=False, url="/v1/console-users", headers=program.headers,
                                 json={"email": email, "display_name": "Casey Manager", "role": role})
    assert response.status_code == 201, response.text
    return response.json()


async def accept(client: Any, invite_url: str, password: str = PASSWORD) -> Any:
    path = invite_url.split("://", 1)[1].split("/", 1)[1]
    return await client.post(follow_redirects=False, url="/" + path, data={"password": password, "confirm": password})


async def attempt(client: Any, email: str, password: str) -> Any:
    """A sign-in as a browser makes it: the form (its token in a field and a cookie), then
    the POST with both. The shared test client's own jar is emptied after, so that no other
    test rides on a cookie of this one."""
    form = await client.get(follow_redirects=False, url="/console/sign-in")
    pre = re.match(r"rw_console_pre=([^;]+)", form.headers["set-cookie"])
    assert pre, form.headers
    client.cookies.clear()
    response = await client.post(follow_redirects=False, url="/console/sign-in",
                                 data={"email": email, "password": password, "csrf": csrf_of(form.text)},
                                 headers={"Cookie": f"rw_console_pre={pre.group(1)}"})
    client.cookies.clear()
    return response


async def sign_in(client: Any, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Signs in; answers the Cookie header of the session."""
    response = await attempt(client, email, password)
    assert response.status_code == 303, response.text
    cookie = ";".join(response.headers.get_list("set-cookie"))
    value = re.search(r"rw_console=([^;]+)", cookie)
    assert value, cookie
    return {"Cookie": f"rw_console={value.group(1)}"}


async def person_in(client: Any, program: ProgramHandle, role: str) -> tuple[str, dict[str, str]]:
    email = new_email()
    created = await invite(client, program, email, role)
    assert (await accept(client, created["invite_url"])).status_code == 303
    return email, await sign_in(client, email)


async def get(client: Any, path: str, session: dict[str, str]) -> Any:
    response = await client.get(follow_redirects=False, url=path, headers=session)
    client.cookies.clear()
    return response


async def post(client: Any, path: str, session: dict[str, str], data: dict[str, str]) -> Any:
    response = await client.post(follow_redirects=False, url=path, headers=session, data=data)
    client.cookies.clear()
    return response


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)
