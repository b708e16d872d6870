"""Structured JSON logs, one object a line, with the request id and the principal's kind.

Only what the code passes to the logger is written: headers, bodies and secrets never are.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import msgspec

_FIELDS = ("request_id", "principal")
# The handler configure_logging installed: while it is the only one a record reaches, a
# line can be written to it straight (write_direct), without a LogRecord.
_handler: logging.StreamHandler[TextIO] | None = None


class JsonFormatter(logging.Formatter):
    # The formatted second, kept (one tuple: threads see both halves or neither): every
    # access line would format it again (strftime).
    _second: tuple[int, str] = (-1, "")

    def _timestamp(self, record: logging.LogRecord) -> str:
        return self.timestamp(int(record.created), int(record.msecs))

    def timestamp(self, second: int, msecs: int) -> str:
        cached, text = self._second
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{msecs:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


class _Line(msgspec.Struct, omit_defaults=True):
    """A line as JsonFormatter writes it (the same fields, in the same order)."""

    ts: str
    level: str
    logger: str
    message: str
    request_id: str | None = None
    principal: str | None = None


_encode_line = msgspec.json.Encoder().encode


def write_direct(logger: logging.Logger, message: str, request_id: str | None, principal: str | None) -> bool:
    """Writes an INFO line of `logger` as the configured handler would, without building a
    LogRecord (its set-up, the handler chain and the formatter's dict took a tenth of a
    wallet read's CPU: the access log writes one a request). Answers False, writing nothing,
    unless configure_logging's handler is the one place the record would go: no other
    handler, filter or non-propagating logger on the way (a test's capture, an operator's
    logging config), so the caller logs the usual way."""
    handler = _handler
    if handler is None or handler.filters or handler.level > logging.INFO:
        return False
    if logging.getLevelName(logging.INFO) != "INFO":  # renamed (addLevelName): the formatter's way
        return False
    current: logging.Logger | None = logger
    while current is not None and current is not logging.root:
        if current.handlers or not current.propagate or current.disabled or (
                current is logger and current.filters):
            return False
        current = current.parent
    root_handlers = logging.root.handlers
    if len(root_handlers) != 1 or root_handlers[0] is not handler:
        return False
    formatter = handler.formatter
    if type(formatter) is not JsonFormatter:
        return False
    now = time.time_ns()
    second, rest = divmod(now, 1_000_000_000)
    handler.acquire()
    try:
        line = _encode_line(_Line(formatter.timestamp(second, rest // 1_000_000), "info", logger.name, message,
                                  request_id, principal))
        stream = handler.stream
        stream.write(line.decode() + handler.terminator)
        stream.flush()
    except Exception:
        # As the handler would: report it (logging.raiseExceptions) and go on.
        handler.handleError(logger.makeRecord(logger.name, logging.INFO, "", 0, message, None, None))
    finally:
        handler.release()
    return True


def configure_logging(level: str = "info") -> None:
    global _handler
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    _handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
