"""HTTP/1.1 over a raw socket, for tests that look at the wire itself: how many TCP segments an
answer took, what a pipelined or half-closed connection gets back (tests/api/test_http_protocol.py)."""

from __future__ import annotations

import socket
import struct

# struct tcp_info (linux/tcp.h): tcpi_data_segs_in, the segments received that carried data.
_DATA_SEGS_IN = 152


def data_segments_in(sock: socket.socket) -> int:
    return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), _DATA_SEGS_IN)[0]


def connect(url: str, receive_buffer: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((host, int(port)))
    return sock


class Answers:
    """HTTP/1.1 answers read off one socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buffer += chunk

    def next(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode().split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        if head_only:
            return int(status_line.split()[1]), headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._more()
                size_line, rest = self.buffer.split(b"\r\n", 1)
                size = int(size_line, 16)
                while len(rest) < size + 2:
                    self._more()
                    rest = self.buffer.split(b"\r\n", 1)[1]
                body += rest[:size]
                self.buffer = rest[size + 2:]
                if size == 0:
                    return int(status_line.split()[1]), headers, body
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body


def get(path: str, *extra: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: test", *extra, "", ""]).encode()


def segments_for_answers(url: str, count: int) -> int:
    """The data segments `count` answers of `GET /health` on one keep-alive connection took."""
    with connect(url) as sock:
        answers, before = Answers(sock), data_segments_in(sock)
        for _ in range(count):
            sock.sendall(get("/health"))
            status, _, body = answers.next()
            assert status == 200 and body
        return data_segments_in(sock) - before
