"""A throwaway stack for benchmarks: embedded Valkey, SQLite, one uvicorn API process.

Everything lives in a temporary folder on loopback and is torn down on exit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import httpx

from api.embedded import EmbeddedValkey
from api.http_protocol import ONE_WRITE


class Stack:
    def __init__(self, url: str, operator_key: str, valkey: EmbeddedValkey, folder: Path, pid: int = 0,
                 env: dict[str, str] | None = None) -> None:
        self.url = url
        self.pid = pid  # the API's process (with one worker, uvicorn serves in this process)
        self.env = env or {}  # what the API runs with: the CLI run with it sees the same data
        self.operator_key = operator_key
        self.valkey = valkey
        self.folder = folder

    @property
    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api_stack(workers: int = 1) -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-"))
    valkey = EmbeddedValkey(folder)
    valkey.start()
    operator_key = "rwo_" + secrets.token_urlsafe(24)
    env = {**os.environ, "RW_DATA_DIR": str(folder), "REDIS_URL": valkey.url, "RW_EMBEDDED_VALKEY": "1",
           "RW_OPERATOR_KEY": operator_key, "RW_LOG_LEVEL": "warning"}
    env.pop("DATABASE_URL", None)
    binary = str(Path(sys.executable).parent / "reward-wallet")
    subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.asgi:app_factory", "--factory", "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning", "--http", ONE_WRITE],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the API did not start")
            time.sleep(0.1)
        yield Stack(url, operator_key, valkey, folder, server.pid, env)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        valkey.stop()
        shutil.rmtree(folder, ignore_errors=True)
