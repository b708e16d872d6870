"""The API answers each request in one TCP segment (api/http_protocol.py), and HTTP still
behaves: keep-alive, pipelining, HEAD, `Connection: close`, large and streamed answers."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from api.http_protocol import HOLD_AT, OneWriteProtocol
from tests.conftest import LiveServer, free_port

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


def test_each_answer_reaches_the_client_in_one_tcp_segment(live_server: LiveServer) -> None:
    # uvicorn's own protocol sends the headers and the body as two segments: the client
    # would count 40 here, and wake twice for each answer.
    with connect(live_server.url) as sock:
        answers = Answers(sock)
        before = data_segments_in(sock)
        for _ in range(20):
            sock.sendall(get("/health"))
            status, _, body = answers.next()
            assert status == 200 and body
        assert data_segments_in(sock) - before == 20


def test_pipelined_requests_are_answered_in_order_on_one_connection(live_server: LiveServer) -> None:
    with connect(live_server.url) as sock:
        sock.sendall(get("/health") + get("/v1/nowhere") + get("/health"))
        answers = Answers(sock)
        assert [answers.next()[0] for _ in range(3)] == [200, 404, 200]


def test_head_and_connection_close_answer_and_end_as_http_says(live_server: LiveServer) -> None:
    with connect(live_server.url) as sock:
        sock.sendall(get("/health", method="HEAD"))
        answers = Answers(sock)
        status, headers, _ = answers.next(head_only=True)
        assert status == 200 and int(headers["content-length"]) > 0
        sock.sendall(get("/health", "Connection: close"))
        status, headers, body = answers.next()
        assert status == 200 and headers["connection"] == "close" and body
        sock.settimeout(5)
        assert sock.recv(1) == b""  # the server closed the connection after the answer


def test_a_large_answer_arrives_whole(live_server: LiveServer) -> None:
    with connect(live_server.url) as sock:
        sock.sendall(get("/schema/openapi.json"))
        status, headers, body = Answers(sock).next()
        assert status == 200 and len(body) == int(headers["content-length"]) > HOLD_AT
        assert body.rstrip().endswith(b"}")


# A bare ASGI app for what the API has no route for: a streamed answer, slow or far larger
# than the socket's buffers.
STREAM_CHUNKS = 64
CHUNK = b"x" * 200_000  # 12.8 MB in all: more than the kernel's socket buffers hold (4 MB + 6 MB at most)
SENT_ALL = threading.Event()  # set by /big once its last part is sent
FIRST_PART_READ = threading.Event()  # set by the client of /slow once the first part has reached it


async def streaming_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/slow":
        await send({"type": "http.response.body", "body": b"one ", "more_body": True})
        # The rest only once the client has the first part: held back, it would never arrive.
        await asyncio.to_thread(FIRST_PART_READ.wait, 10)
        await send({"type": "http.response.body", "body": b"two", "more_body": True})
    else:
        for _ in range(STREAM_CHUNKS):  # no pause between the chunks: flow control must hold the app
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        SENT_ALL.set()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@pytest.fixture(scope="module")
def streaming_server() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(streaming_app, host="127.0.0.1", port=port, http=OneWriteProtocol,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the streaming server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_streamed_answer_far_larger_than_the_socket_buffers_arrives_whole(streaming_server: str) -> None:
    with connect(streaming_server, receive_buffer=16_384) as sock:
        sock.sendall(get("/big"))
        # The client reads nothing yet: once the socket's buffers are full, uvicorn's flow
        # control must stop the app (writes held in memory instead would let it run to the end).
        assert not SENT_ALL.wait(1.0)
        status, _, body = Answers(sock).next()
        assert status == 200 and body == CHUNK * STREAM_CHUNKS and SENT_ALL.is_set()


def test_a_slow_stream_sends_each_part_when_it_is_written(streaming_server: str) -> None:
    with connect(streaming_server) as sock:
        sock.settimeout(5)
        sock.sendall(get("/slow"))
        answers = Answers(sock)
        while b"one " not in answers.buffer:
            answers._more()
        FIRST_PART_READ.set()
        status, _, body = answers.next()
        assert status == 200 and body == b"one two"
