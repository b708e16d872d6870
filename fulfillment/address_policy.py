"""Which addresses a webhook may be sent to: public unicast ones only.

A partner's webhook URL is typed by an admin, and the server then POSTs signed orders (names,
emails) there and keeps a log of how each attempt went. Pointed inside our own network it
would turn that into a proxy and a port scanner, so loopback, private, link-local (and with
it 169.254.169.254, the cloud metadata service), unique-local, shared, multicast, reserved and
unspecified addresses are refused, also when wrapped in an IPv6 form that carries an IPv4
address (IPv4-mapped, IPv4-compatible, 6to4, NAT64). Pure: no I/O, no DNS.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services that a generic range check would let through (or names outright, for
# the message): Oracle Cloud's 192.0.0.192 counts as global for Python's `ipaddress`.
_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "192.0.0.192",
                                                 "100.100.100.200", "fd00:ec2::254")}
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def parse(text: str) -> Address | None:
    """The address written in `text` (an IPv6 zone such as `%eth0` is ignored), else None."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the forms that carry one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address) -> str | None:
    """Why a webhook may not be sent to `address` (a short phrase), or None when it may."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return refusal(inner)
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global or address.is_reserved:
        return "not a public address"
    return None


def host_refusal(host: str) -> str | None:
    """A refusal decided by the host name alone, before any lookup (None: look it up)."""
    name = host.strip().rstrip(".").lower()
    if not name:
        return "no host"
    address = parse(name)
    if address is not None:
        return refusal(address)
    if name == "localhost" or name.endswith(".localhost"):
        return "a loopback address"
    return None
