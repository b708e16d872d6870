"""The one place a request body becomes JSON: its media type is checked and its nesting
bounded here, for every route that takes a `data` body, before any handler sees it.

A body that declares another media type (`text/plain`, a form) answers 415; no
Content-Type at all is taken as JSON, so `curl --data-binary @file.json` and older
clients keep working. JSON nested deeper than any body of ours answers 400 instead of
exhausting the decoder's recursion (which used to be a 500 with a 3 KB traceback).
"""

from __future__ import annotations

from typing import Any

import msgspec

from litestar.exceptions import HTTPException, ValidationException

from api.strict_body import StrictRequest

# Our deepest body (a batch item's metadata) is a handful of levels: 32 is generous.
MAX_DEPTH = 32


class UnsupportedMediaType(HTTPException):
    status_code = 415


def is_json_media_type(content_type: str) -> bool:
    """`application/json`, with parameters (`; charset=utf-8`) or as a `+json` suffix type."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/")
                                                  and media_type.endswith("+json"))


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether decoded JSON nests containers deeper than `limit`; iterative, so a deep
    value cannot exhaust the stack while it is measured."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _nesting_error() -> ValidationException:
    reason = f"JSON nested more than {MAX_DEPTH} levels deep"
    return ValidationException(reason, extra=[{"key": "body", "source": "body", "message": reason}])


class JsonRequest(StrictRequest):
    """Media type and depth here; strict typing of the decoded body in StrictRequest."""

    async def json(self) -> Any:
        body = await self.body()
        content_type = self.headers.get("content-type")
        if body and content_type is not None and not is_json_media_type(content_type):
            raise UnsupportedMediaType(f"this endpoint takes application/json, not {content_type[:100]}")
        # Counting brackets is cheap; only a body with enough of them can be too deep. Measured
        # before the typed decoding, so the answer says what is wrong with the body as a whole.
        if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
            try:
                if too_deep(msgspec.json.decode(body)):
                    raise _nesting_error()
            except (RecursionError, msgspec.DecodeError) as exc:
                if isinstance(exc, RecursionError):
                    raise _nesting_error() from None
        try:
            return await super().json()
        except RecursionError:
            raise _nesting_error() from None
