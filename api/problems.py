"""RFC 9457 problem documents: the only place errors become HTTP.

Every error answers `application/problem+json` with `type`, `title`, `status`, `detail`
and a stable `code` from CONTRACT.md. Nothing leaks a stack trace; an unexpected error is
logged with its request id and answered as a plain 500 document.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from asyncpg.exceptions import DataError as PostgresDataError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kernel.errors import DomainError
from kernel.sqlite_writer import WriterGone

log = logging.getLogger("rw.api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://reward-wallet.dev/problems/"

# Domain codes -> HTTP status. Codes are fixed by CONTRACT.md.
STATUS_FOR_CODE: dict[str, int] = {
    "validation_error": 422,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "insufficient_points": 422,
    "idempotency_key_reused": 422,
    "idempotency_key_in_flight": 409,
    "out_of_stock": 409,
    "campaign_not_active": 409,
    "limit_reached": 409,
    "rate_limited": 429,
    "budget_exhausted": 409,
    "program_suspended": 409,
    "participant_inactive": 409,
    "sweepstakes_closed": 409,
    "sweepstakes_not_open": 409,
    "tax_form_required": 409,
    "already_released": 409,
    "not_configured": 503,
    "unavailable": 503,
}



def status_for(code: str | None) -> int:
    """The HTTP status of a domain code (the one place that picks it)."""
    return STATUS_FOR_CODE.get(code or "", 400)


TITLES: dict[str, str] = {
    "validation_error": "The request is not valid",
    "unauthenticated": "Authentication required",
    "forbidden": "Not allowed for this principal",
    "not_found": "Not found",
    "conflict": "Conflicts with the current state",
    "insufficient_points": "Not enough points",
    "idempotency_key_reused": "Idempotency-Key reused with a different request",
    "idempotency_key_in_flight": "A request with this Idempotency-Key is still running",
    "out_of_stock": "Out of stock",
    "campaign_not_active": "Campaign is not active",
    "limit_reached": "Limit reached",
    "rate_limited": "Too many requests",
    "budget_exhausted": "Budget exhausted",
    "program_suspended": "The program is suspended",
    "participant_inactive": "The participant is deactivated",
    "sweepstakes_closed": "The sweepstakes is closed",
    "sweepstakes_not_open": "The sweepstakes is not open yet",
    "tax_form_required": "A tax form is needed first",
    "already_released": "The lot was already released",
    "method_not_allowed": "Method not allowed",
    "payload_too_large": "Request body too large",
    "unsupported_media_type": "Unsupported media type",
    "internal_error": "Internal error",
    "not_configured": "Not configured",
    "unavailable": "Service temporarily unavailable",
}


class InvalidParam(msgspec.Struct, frozen=True):
    name: str
    reason: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = None
    request_id: str | None = None


def problem_response(
    request: Request[Any, Any, Any] | None,
    status: int,
    code: str,
    detail: str,
    invalid_params: list[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    request_id = None
    instance = None
    if request is not None:
        request_id = request.scope.get("state", {}).get("request_id")
        instance = request.url.path
    body = Problem(
        type=TYPE_BASE + code,
        title=TITLES.get(code, code.replace("_", " ").capitalize()),
        status=status,
        detail=detail,
        code=code,
        instance=instance,
        invalid_params=invalid_params,
        request_id=request_id,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers or {})


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    status = status_for(exc.code)
    headers = {"Idempotent-Replayed": "true"} if exc.extra.get("replayed") else {}
    if exc.code == "idempotency_key_in_flight":  # tell the client when the first try will have ended
        headers["Retry-After"] = str(exc.extra.get("retry_after") or 1)
    field = exc.extra.get("field")
    params = [InvalidParam(name=field, reason=exc.detail)] if field else None
    return problem_response(request, status, exc.code, exc.detail, params, headers)


# msgspec names a missing or unknown field in its message, not in its path.
_NAMED_FIELD = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]+)`")


def _param_name(item: dict[str, Any]) -> str:
    """The field a validation message is about, as the caller wrote it (`points`,
    `grants[3].points`), never Litestar's name for the whole body (`data`)."""
    key = str(item.get("key") or "")
    if item.get("source") != "body" and key != "data":
        return key or str(item.get("source") or "body")
    path = "" if key == "data" else key
    named = _NAMED_FIELD.match(str(item.get("message", "")))
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or "body"


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    params: list[InvalidParam] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            reason = str(item.get("message", ""))
            if item.get("key") == "data" and reason == "'data'":
                reason = "a JSON body is required"  # Litestar's KeyError for an empty body
            params.append(InvalidParam(name=_param_name(item), reason=reason))
    detail = exc.detail or "the request is not valid"
    if params:
        detail = "; ".join(f"{p.name}: {p.reason}" if p.reason else p.name for p in params)
    return problem_response(request, 400, "validation_error", detail, params or None)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    if isinstance(exc, NotAuthorizedException):
        code = "unauthenticated"
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    elif isinstance(exc, NotFoundException):
        code = "not_found"
    elif isinstance(exc, MethodNotAllowedException):
        code = "method_not_allowed"
    elif isinstance(exc, TooManyRequestsException) or exc.status_code == 429:
        code = "rate_limited"
    elif exc.status_code == 413:
        code = "payload_too_large"
    elif exc.status_code == 415:
        code = "unsupported_media_type"
    elif 400 <= exc.status_code < 500:
        code = "validation_error"
    else:
        code = "internal_error"
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else TITLES.get(code, "error")
    status = exc.status_code
    if status == 500 and detail == CLIENT_GONE:
        # Litestar's word for a body cut off by the client closing its connection (a phone
        # that gave up, a keep-alive connection closing under a request): nobody waits for
        # this answer, and the server did not fail.
        log.info("client closed the connection during its request at %s", request.url.path)
        return problem_response(request, 400, "validation_error", "the request's body did not arrive whole")
    if status >= 500:
        log.error("HTTP %s at %s: %s", status, request.url.path, detail)
        detail = "the server could not complete the request"
    return problem_response(request, status, code, detail, headers=headers)


# Litestar's detail when the client disconnected before its request's body was read
# (litestar/connection/request.py).
CLIENT_GONE = "client disconnected prematurely"


def _store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.warning("store unavailable at %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return problem_response(request, 503, "unavailable", "a data store is unreachable; retry with the same "
                            "Idempotency-Key", headers={"Retry-After": "1"})


def _unencodable(request: Request[Any, Any, Any], exc: UnicodeError) -> Response[Problem]:
    # JSON may carry lone surrogates ("\ud800") that no store can hold as UTF-8.
    return problem_response(request, 400, "validation_error",
                            "text must be valid Unicode (a lone surrogate such as \\ud800 is not)")


def _unstorable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Postgres refuses some values SQLite takes (a NUL character in text, a number past
    # BIGINT): the input is at fault, so it is a 400, and nothing was written.
    return problem_response(request, 400, "validation_error",
                            f"a value in the request cannot be stored ({type(exc).__name__})")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unhandled error at %s %s", request.method, request.url.path)
    return problem_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "the server could not complete the request"
    )


exception_handlers: dict[Any, Any] = {
    DomainError: _domain,
    ValidationException: _validation,
    HTTPException: _http,
    RedisConnectionError: _store_unavailable,
    RedisTimeoutError: _store_unavailable,
    ConnectionRefusedError: _store_unavailable,
    WriterGone: _store_unavailable,  # SQLite's writer process died holding the write
    UnicodeError: _unencodable,
    PostgresDataError: _unstorable,
    OverflowError: _unstorable,
    Exception: _unexpected,
}

__all__ = ["PROBLEM_JSON", "Problem", "exception_handlers", "problem_response"]
