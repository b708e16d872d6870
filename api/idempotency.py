"""The `Idempotency-Key` header, as CONTRACT.md fixes it, for every point-moving POST.

The header is validated here and turned into an `Idem`: where the result is recorded
(per calling principal, under the program's hash tag) and the request's fingerprint
(method, path and the body in canonical JSON, so whitespace or key order do not matter).

Operations of several steps run through `kernel/idempotency.py` with that `Idem`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from api.auth import Principal
from kernel import keys as kernel_keys
from kernel.idempotency import Idem, pinned_id
from kernel.ids import new_id

HEADER = "Idempotency-Key"
# 1..255 printable ASCII (the contract): the header, and each grant's id in a batch.
KEY_MAX = 255
KEY_PATTERN = r"^[\x20-\x7e]+$"
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=KEY_MAX, pattern=KEY_PATTERN)]
_VALID = re.compile(KEY_PATTERN)


def fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except (msgspec.DecodeError, RecursionError):
        # Not JSON (or nested too deep to decode): the bytes themselves are the request;
        # the body's own decoding answers the caller why.
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def header_value(request: Request[Any, Any, Any]) -> str:
    return valid_header(request.headers.get(HEADER))


def valid_header(value: str | None) -> str:
    """The header's value; raises 400 when it is missing or malformed."""
    if value is None:
        raise ValidationException(
            f"the {HEADER} header is required on this endpoint",
            extra=[{"key": HEADER, "source": "header", "message": "required (1..255 printable ASCII)"}],
        )
    if len(value) > KEY_MAX or not _VALID.match(value):
        raise ValidationException(
            f"{HEADER} must be 1..255 printable ASCII characters",
            extra=[{"key": HEADER, "source": "header", "message": "must be 1..255 printable ASCII"}],
        )
    return value


def idem_for(principal: Principal, value: str, method: str, path: str, body: bytes) -> Idem:
    program = principal.program_id or "operator"
    return Idem(key=kernel_keys.idempotency(program, principal.idempotency_scope, value),
                fingerprint=fingerprint(method, path, body))


async def provide_idem(
    request: Request[Any, Any, Any],
    idempotency_key: Annotated[
        str,
        Parameter(header=HEADER, min_length=1, max_length=KEY_MAX, pattern=KEY_PATTERN,
                  description="1..255 printable ASCII; a retry with the same key and body replays the first "
                              "answer (remembered for at least 24 hours)"),
    ],
) -> Idem:
    """Dependency for point-moving POSTs: the validated header as an `Idem`."""
    value = header_value(request)
    principal = request.user
    assert isinstance(principal, Principal)
    return idem_for(principal, value, request.method, request.url.path, await request.body())


def item_idem(principal: Principal, scope: str, item_key: str, body: bytes) -> Idem:
    """An idempotency record for one item of a batch, keyed by the item's own id."""
    program = principal.program_id or "operator"
    return Idem(key=kernel_keys.idempotency(program, f"{principal.idempotency_scope}:{scope}", item_key),
                fingerprint=hashlib.sha256(body).hexdigest())


async def request_id_for(request: Request[Any, Any, Any], ttl: int) -> str:
    """The id an approval request is filed under by a route whose `Idempotency-Key` is optional
    (an earning rule's activation): pinned by the key when one is sent, so a retry files one
    request; a new id otherwise."""
    value = request.headers.get(HEADER)
    if value is None:
        return new_id("apr")
    principal = request.user
    assert isinstance(principal, Principal)
    idem = idem_for(principal, valid_header(value), request.method, request.url.path, await request.body())
    return await pinned_id(request.app.state.redis, idem, "apr", ttl)
