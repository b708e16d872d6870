"""A pytest plugin (`-p tests.log_capture` in pyproject's addopts): every log line the test
session writes must be free of secrets, and the session fails if one is not.

It sees every record logged in this process (a wrapper around `Logger.callHandlers`, so
`configure_logging` replacing the root handlers cannot hide anything; the access log's
direct write, api/logs.py `write_direct`, builds no record only while `configure_logging`'s
handler is the root's one handler, which in this process happens only inside
tests/api/test_logs.py, whose own buffer it checks), with the `rw.*`
loggers at DEBUG and everything else at INFO, formatted exactly as production formats it
(api/logs.py). At the end it also reads the log files live servers and CLIs wrote under the
session folder. A line fails if it holds:

- the shape of a secret: an API key (`rwk.<id>.<secret>`), an operator key (`rwo_...`), a
  refresh token (`rwr....`), a JWT (`eyJ....eyJ...`), a Stripe secret key, webhook secret
  or PaymentIntent client secret, a `Bearer` credential;
- a known secret value: the operator key, JWT secret, encryption key, Stripe keys and
  metrics token from the environment, the Redis password in `REDIS_URL`, and every
  gift-card credential (code, PIN, URL) that was sealed in this process (recorded from
  `Sealer.seal`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

SECRET_SHAPES = {
    "API key": re.compile(r"rwk\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}"),
    "operator key": re.compile(r"rwo_[A-Za-z0-9_-]{16,}"),
    "refresh token": re.compile(r"rwr\.[A-Za-z0-9_-]{20,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
    "Stripe secret key": re.compile(r"\b[sr]k_(?:test|live)_[A-Za-z0-9]{8,}"),
    "Stripe webhook secret": re.compile(r"whsec_[A-Za-z0-9_]{8,}"),
    "Stripe client secret": re.compile(r"\bpi_[A-Za-z0-9]+_secret_[A-Za-z0-9]{8,}"),
    "bearer credential": re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}"),
}
SECRET_SETTINGS = ("RW_OPERATOR_KEY", "RW_JWT_SECRET", "RW_ENCRYPTION_KEY", "STRIPE_API_KEY",
                   "STRIPE_WEBHOOK_SECRET", "RW_METRICS_TOKEN")
# Shorter sealed values (a 4-digit PIN) would match timings and counts by chance.
MIN_KNOWN_LENGTH = 8

_lines: list[str] = []
_sealed: set[str] = set()
_recording = [True]
_formatter: logging.Formatter | None = None


def find_secrets(lines: Iterable[str], known: Iterable[str] = ()) -> Iterator[tuple[str, str]]:
    """(what, line) for each line that holds a secret's shape or a known secret value."""
    values = [v for v in known if len(v) >= MIN_KNOWN_LENGTH]
    for line in lines:
        for what, shape in SECRET_SHAPES.items():
            if shape.search(line):
                yield what, line
                break
        else:
            for value in values:
                if value in line:
                    yield "known secret value", line
                    break


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)


def _capture(record: logging.LogRecord) -> None:
    assert _formatter is not None
    try:
        _lines.append(_formatter.format(record))
    except Exception:  # an unformattable record is the logger's bug, not a leak
        _lines.append(str(record.msg))


@pytest.hookimpl(trylast=True)  # after conftest chose the SQL engine from the environment
def pytest_configure(config: pytest.Config) -> None:
    global _formatter
    from api.logs import JsonFormatter
    from fulfillment.sealing import Sealer

    _formatter = JsonFormatter()
    original_call_handlers = logging.Logger.callHandlers

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        _capture(record)
        original_call_handlers(self, record)

    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("rw").setLevel(logging.DEBUG)

    original_seal = Sealer.seal

    def seal(self: Sealer, value: Any) -> str:
        if _recording[0]:
            _sealed.update(_leaves(value))
        return original_seal(self, value)

    Sealer.seal = seal  # type: ignore[method-assign]


@contextlib.contextmanager
def made_up_values() -> Iterator[None]:
    """Seals inside are of values a test makes up to exercise sealing itself, not secrets: a
    property test's arbitrary text (Hypothesis draws words from the code it loaded, such as
    "webhooks") would otherwise fail the session wherever the app logs that word."""
    _recording[0] = False
    try:
        yield
    finally:
        _recording[0] = True


def _session_log_files() -> list[Path]:
    conftest = sys.modules.get("tests.conftest")
    folder = getattr(conftest, "_SESSION_DIR", None)
    return sorted(Path(folder).rglob("*.log")) if folder else []


def _known_secrets() -> set[str]:
    values = {os.environ[name] for name in SECRET_SETTINGS if os.environ.get(name)}
    # The embedded Valkey's password travels in REDIS_URL (redis://:<password>@host...).
    redis_password = urlsplit(os.environ.get("REDIS_URL", "")).password
    if redis_password:
        values.add(redis_password)
    return values | _sealed


# What the xdist workers found (make test runs the SQLite pass on two): each checks its own
# lines and files, and the controller, which runs no test, fails the session for them.
# By worker: a worker stopped with Ctrl-C goes down twice.
_from_workers: dict[str, tuple[int, int, list[str]]] = {}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", None) or {}
    if "log_capture" in output:
        _from_workers[node.gateway.id] = output["log_capture"]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    sources: list[tuple[str, list[str]]] = [("this process", _lines)]
    for path in _session_log_files():
        try:
            sources.append((str(path), path.read_text(errors="replace").splitlines()))
        except OSError:
            continue
    known = _known_secrets()
    leaks = [(source, what, line) for source, lines in sources for what, line in find_secrets(lines, known)]
    checked = sum(len(lines) for _, lines in sources)
    found = [f"  [{what}] in {source}: {line[:300]}" for source, what, line in leaks[:20]]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput["log_capture"] = (checked, len(leaks), found)
        return
    count = len(leaks)
    for worker_checked, worker_count, worker_found in _from_workers.values():
        checked += worker_checked
        count += worker_count
        found += worker_found
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not count:
        if reporter is not None:
            reporter.write_line(f"log_capture: {checked} log lines checked, no secret found")
        return
    message = "\n".join([f"log_capture: {count} log line(s) hold a secret:", *found])
    if reporter is not None:
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
