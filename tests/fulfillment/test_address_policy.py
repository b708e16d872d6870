"""The webhook address policy, alone: public unicast addresses only, in every spelling."""

from __future__ import annotations

import pytest

from fulfillment.address_policy import host_refusal, parse, refusal

REFUSED = [
    "127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "100.64.0.1", "fd00::1",
    "fd00:ec2::254", "fe80::1", "fe80::1%eth0", "224.0.0.1", "ff02::1", "255.255.255.255", "240.0.0.1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1", "2002:7f00:1::1",
    "2002:a9fe:a9fe::", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2001:db8::1",
]
ALLOWED = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
           "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("text", REFUSED)
def test_inner_and_special_addresses_are_refused(text: str) -> None:
    address = parse(text)
    assert address is not None and refusal(address) is not None


@pytest.mark.parametrize("text", ALLOWED)
def test_public_unicast_addresses_are_allowed(text: str) -> None:
    address = parse(text)
    assert address is not None and refusal(address) is None


def test_the_reason_is_said_in_words() -> None:
    assert refusal(parse("169.254.169.254")) == "a cloud metadata address"  # type: ignore[arg-type]
    assert refusal(parse("::ffff:127.0.0.1")) == "a loopback address"  # type: ignore[arg-type]
    assert refusal(parse("10.1.2.3")) == "a private address"  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "127.0.0.1", "::1", ""])
def test_host_names_that_need_no_lookup_to_refuse(host: str) -> None:
    assert host_refusal(host) is not None


@pytest.mark.parametrize("host", ["partner.example", "hooks.acme.com", "8.8.8.8"])
def test_other_host_names_are_left_to_the_lookup(host: str) -> None:
    assert host_refusal(host) is None


def test_text_that_is_no_address_parses_to_none() -> None:
    assert parse("partner.example") is None and parse("2130706433") is None
