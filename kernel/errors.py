"""Domain errors shared by every package. Only `api/problems.py` turns them into HTTP.

Each error carries a stable `code` from CONTRACT.md; the HTTP edge maps codes to statuses.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code: str = "domain_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    code = "not_found"


class Invalid(DomainError):
    """Input that is well-formed but not acceptable (unknown team, bad CSV row, ...)."""

    code = "validation_error"


class Conflict(DomainError):
    code = "conflict"


class InsufficientPoints(DomainError):
    code = "insufficient_points"


class BudgetExhausted(DomainError):
    code = "budget_exhausted"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(DomainError):
    code = "idempotency_key_in_flight"


class ProgramSuspended(DomainError):
    """The operator suspended the program: nothing new may be promised until it is reactivated."""

    code = "program_suspended"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class NotConfigured(DomainError):
    code = "not_configured"


class Refused(DomainError):
    """A refusal whose code a Redis function chose (campaign_not_active, limit_reached, ...)."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


class Unavailable(DomainError):
    """Momentarily unable to answer; the same request may be retried (503)."""

    code = "unavailable"
