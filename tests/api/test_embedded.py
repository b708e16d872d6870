"""The embedded Valkey's malloc (`RW_VALKEY_ALLOCATOR`): jemalloc preloaded when the system has
it, as a stock Valkey build brings it; the C library's on request; and what the running server
really mapped reported, whatever was asked."""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from api.embedded import EmbeddedValkey
from tests.debian_packages import install_log, wait_for_install


def jemalloc() -> str:
    """jemalloc's soname, once `make test`'s background install (libjemalloc2) has finished."""
    wait_for_install()
    name = ctypes.util.find_library("jemalloc")
    if name is None:
        pytest.fail(f"no jemalloc on this machine; `make test` installs Debian's libjemalloc2 with apt:\n{install_log()}")
    return name


def mapped_files(pid: int) -> set[str]:
    """The file names the process has mapped (its binary and shared libraries)."""
    return {os.path.basename(line.split(maxsplit=5)[5]) for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if len(line.split(maxsplit=5)) == 6}


def exercised(server: EmbeddedValkey) -> None:
    """Writes and frees enough to go through the allocator many times, then reads it back."""
    client = redis.Redis.from_url(server.url)
    try:
        for n in range(200):
            client.hset(f"h{n}", mapping={f"f{i}": "x" * (i * 7) for i in range(40)})
            client.xadd("journal", {"n": n, "meta": "y" * 500})
        client.delete(*[f"h{n}" for n in range(0, 200, 2)])
        assert client.hlen("h1") == 40 and client.xlen("journal") == 200
        assert client.info("memory")["used_memory"] > 0
    finally:
        client.close()


@contextlib.contextmanager
def running(folder: Path, allocator: str) -> Iterator[tuple[EmbeddedValkey, set[str]]]:
    """The server started with `allocator`, and the files its process mapped; stopped after."""
    server = EmbeddedValkey(folder, allocator=allocator)
    server.start()
    try:
        assert server.process is not None
        assert json.loads(server.state_file.read_text())["allocator"] == server.allocator
        yield server, mapped_files(server.process.pid)
        exercised(server)
    finally:
        server.stop()


def test_by_default_the_server_runs_on_jemalloc_when_the_system_has_it(tmp_path: Path) -> None:
    soname = jemalloc()
    with running(tmp_path, "auto") as (server, mapped):
        assert soname in mapped
        assert os.path.basename(server.allocator) == soname


def test_libc_preloads_nothing(tmp_path: Path) -> None:
    soname = jemalloc()
    with running(tmp_path, "libc") as (server, mapped):
        assert soname not in mapped and "valkey-server" in mapped
        assert server.allocator == "libc"


def test_a_library_the_loader_cannot_preload_is_reported_not_pretended(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    not_a_library = tmp_path / "libnotmalloc.so.1"
    not_a_library.write_text("not an ELF file\n")
    with caplog.at_level(logging.INFO, logger="rw.embedded"), running(tmp_path / "data", str(not_a_library)) as (
            server, mapped):
        assert server.allocator == "libc" and "libnotmalloc.so.1" not in mapped
        assert "could not be preloaded" in caplog.text
