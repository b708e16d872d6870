"""Where a webhook goes: the URL's host looked up once, checked, and pinned.

The address that was checked is the address connected to: the request is sent to that IP
with the original `Host` header and TLS server name, so a second DNS answer (a rebinding
attack: public when checked, 127.0.0.1 when connecting) never comes into play. The URL is
parsed by httpx, the client that sends it, so the host checked is the host it would reach.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx
import msgspec

from fulfillment.address_policy import host_refusal, parse, refusal
from kernel.errors import Invalid

Lookup = Callable[[str, int], Awaitable[list[str]]]
LOOKUP_SECONDS = 5.0


class Unresolvable(Exception):
    """The host has no address right now (a delivery retries later)."""


class Refused(Exception):
    """The URL names an address a webhook may not reach; the message says why, in words."""


class Target(msgspec.Struct, frozen=True):
    url: str  # the URL with the checked IP in place of the host name
    host_header: str  # what the partner's server expects in `Host`
    server_name: str | None  # the TLS server name (SNI and certificate check), for https


async def system_lookup(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), LOOKUP_SECONDS)
    except (OSError, asyncio.TimeoutError, UnicodeError, ValueError) as exc:
        raise Unresolvable(f"{host} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise Refused("it is not a URL httpx can send to") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Refused("it needs an http or https scheme and a host")
    return parsed


async def pin(url: str, allow_private: bool, lookup: Lookup = system_lookup) -> Target:
    """Looks the host up once and answers the request target. Every address the name has
    must be acceptable: a name with one public and one private address is refused, since
    which one a client picks is not ours to control."""
    parsed = _parse(url)
    host = parsed.host
    literal = parse(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        if not allow_private and (reason := host_refusal(host)):
            raise Refused(f"{host} is {reason}")
        addresses = await lookup(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        if not addresses:
            raise Unresolvable(f"{host} does not resolve")
    if not allow_private:
        for text in addresses:
            address = parse(text)
            reason = refusal(address) if address is not None else "not an address"
            if reason:
                raise Refused(f"{host} is {reason}" if literal is not None else f"{host} resolves to {reason}")
    try:
        pinned = parsed.copy_with(host=addresses[0])
    except (httpx.InvalidURL, ValueError) as exc:  # an address with an IPv6 zone, say
        raise Refused(f"{host} resolves to an address httpx cannot send to") from exc
    return Target(url=str(pinned), host_header=parsed.netloc.decode("ascii"),
                  server_name=host if parsed.scheme == "https" and literal is None else None)


async def check_url(url: str, allow_private: bool, field: str = "url", lookup: Lookup = system_lookup) -> None:
    """For an admin setting a URL: 422 naming `url` when it names a refused address. A host
    that does not resolve yet is accepted; each delivery checks again."""
    try:
        await pin(url, allow_private, lookup)
    except Refused as exc:
        raise Invalid(f"webhook URL refused: {exc}; webhooks go to public addresses only", field=field) from None
    except Unresolvable:
        pass


async def send(client: httpx.AsyncClient, target: Target, body: bytes, headers: dict[str, str],
               timeout: float) -> httpx.Response:
    extensions = {"sni_hostname": target.server_name} if target.server_name else None
    return await client.post(target.url, content=body, headers={**headers, "Host": target.host_header},
                             timeout=timeout, extensions=extensions)
