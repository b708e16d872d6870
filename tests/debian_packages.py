"""The Debian packages `make test` installs with apt in the background when missing
(Makefile, `browser`): chromium for the browser tests, libjemalloc2 for the embedded Valkey.
A test that needs one waits for that install to finish."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLING = ROOT / ".venv" / ".chromium-installing"
INSTALL_LOG = ROOT / ".venv" / "chromium-install.log"


def wait_for_install(timeout: float = 900.0) -> None:
    """Returns once the Makefile's background install (if any) has finished, or at `timeout`."""
    deadline = time.monotonic() + timeout
    while INSTALLING.exists() and time.monotonic() < deadline:
        time.sleep(1)


def install_log() -> str:
    """The end of the install's log, for a test's failure message."""
    return INSTALL_LOG.read_text()[-2000:] if INSTALL_LOG.exists() else "(no install log)"
