"""Strict JSON bodies: points (and every other number) must be JSON integers.

Litestar converts a decoded body into the handler's `data` type with msgspec's lax rules
(`strict=False`), so `"100"`, `"1e3"` and `1.0` pass for an int, and `"1e3"` granted 1,000
points. This request class checks the raw body against the `data` annotation with
msgspec's strict JSON decoding first, for every route at once; a body that passes is the
same value under both rules, so Litestar's own conversion then changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import Empty

from kernel.money import MAX_MOVE
from kernel.errors import Invalid

_PAST_MOVE = f"Expected `int` <= {MAX_MOVE}"  # msgspec's words for Points past its `le`
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
# A strict decoder per handler (kept with the handler, so its id is never reused); None
# when strict decoding cannot apply (no JSON body type).
_decoders: dict[int, tuple[Any, Any]] = {}


def _decoder_for(handler: Any) -> Any:
    key = id(handler)
    if key not in _decoders:
        decoder = None
        field = handler.parsed_fn_signature.parameters.get("data")
        if field is not None:
            try:
                decoder = msgspec.json.Decoder(field.annotation, strict=True)
            except TypeError:  # a type msgspec cannot decode alone (an upload): Litestar's job
                decoder = None
        _decoders[key] = (handler, decoder)
    return _decoders[key][1]


def _problem(exc: msgspec.DecodeError) -> Exception:
    message = str(exc)
    match = _AT.search(message)
    key = ""  # the body itself; api/problems.py names a missing or unknown field from the message
    if match:
        message = message[:match.start()]
        key = match.group("path").lstrip(".")
    if message == _PAST_MOVE:
        # Well-formed, but past the bound of one operation: 422, as CONTRACT.md says.
        return Invalid(f"one operation moves at most {MAX_MOVE:,} points", field=key or "points")
    return ValidationException(detail=f"{key or 'body'}: {message}",
                               extra=[{"key": key, "message": message, "source": "body"}])


class StrictRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        decoder = _decoder_for(self.route_handler)
        if decoder is not None and self._connection_state.json is Empty:
            body = await self.body()
            if body:
                try:
                    decoder.decode(body)
                except msgspec.ValidationError as exc:
                    raise _problem(exc) from None
                except msgspec.DecodeError:
                    pass  # malformed JSON: Litestar's decoding answers it as before
        return await super().json()

