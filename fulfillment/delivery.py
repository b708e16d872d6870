"""What a delivered card is made of, in the two shapes partners and phones use.

`credentials` is the object orders have always carried (code, PIN, URL, expiry). Suppliers
such as Tango Card, Tremendous and Runa hand over a list instead: labelled lines, each of a
type (code, pin, url, barcode, expiry), so a card with two codes or a barcode is not squeezed
into one object. A partner may send either (or both); an order answers both, each derived
from the other when only one was sent. Sealed at rest together, never logged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from fulfillment.sealing import Sealer
from kernel.errors import Invalid

CredentialType = Literal["code", "pin", "url", "barcode", "expiry"]
_URL = re.compile(r"^https?://\S+$")
_LABELS: dict[str, str] = {"code": "Code", "pin": "PIN", "url": "Redeem at", "expiry": "Expires"}


class Credentials(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    code: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    pin: Annotated[str, Meta(max_length=100)] | None = None
    url: Annotated[str, Meta(max_length=2000, pattern=r"^https?://\S+$")] | None = None
    expires_at: str | None = None
    instructions: Annotated[str, Meta(max_length=2000)] | None = None


class CredentialLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: Annotated[str, Meta(min_length=1, max_length=100)]
    type: CredentialType
    value: Annotated[str, Meta(min_length=1, max_length=2000)]


CredentialList = Annotated[list[CredentialLine], Meta(min_length=1, max_length=20)]


class Delivered(msgspec.Struct, frozen=True):
    credentials: Credentials
    credential_list: list[CredentialLine]


def as_list(credentials: Credentials) -> list[CredentialLine]:
    fields = {"code": credentials.code, "pin": credentials.pin, "url": credentials.url,
              "expiry": credentials.expires_at}
    return [CredentialLine(label=_LABELS[kind], type=kind, value=value)  # type: ignore[arg-type]
            for kind, value in fields.items() if value]


def as_object(lines: list[CredentialLine]) -> Credentials:
    """The first line of each type; a barcode stands in for a code when there is none."""
    first: dict[str, str] = {}
    for line in lines:
        first.setdefault(line.type, line.value)
    return Credentials(code=first.get("code") or first.get("barcode"), pin=first.get("pin"),
                       url=first.get("url"), expires_at=first.get("expiry"))


def delivered(credentials: Credentials | None, credential_list: list[CredentialLine] | None) -> Delivered:
    """What a partner sent, checked: something a person can redeem (a code, a barcode or a URL)."""
    if credential_list is not None:
        for line in credential_list:
            if line.type == "url" and not _URL.match(line.value):
                raise Invalid("a url line needs an http(s) URL", field="credential_list")
            if line.type == "pin" and len(line.value) > 100:
                raise Invalid("a pin line is at most 100 characters", field="credential_list")
    if credentials is None and credential_list is None:
        raise Invalid("send credentials or a credential_list", field="credentials")
    whole = credentials if credentials is not None else as_object(credential_list or [])
    if not (whole.code or whole.url):
        raise Invalid("credentials need a code, a barcode or a url", field="credentials")
    return Delivered(credentials=whole, credential_list=credential_list if credential_list is not None
                     else as_list(whole))


def seal(sealer: Sealer, sent: Delivered) -> str:
    stored: dict[str, Any] = msgspec.to_builtins(sent.credentials)
    if sent.credential_list != as_list(sent.credentials):
        stored["credential_list"] = msgspec.to_builtins(sent.credential_list)
    return sealer.seal(stored)


def unseal(sealer: Sealer, sealed: str) -> Delivered:
    """Orders sealed before lists existed hold the object alone."""
    stored = dict(sealer.open(sealed))
    lines = stored.pop("credential_list", None)
    credentials = msgspec.convert(stored, Credentials)
    return Delivered(credentials=credentials, credential_list=msgspec.convert(lines, list[CredentialLine])
                     if lines is not None else as_list(credentials))
