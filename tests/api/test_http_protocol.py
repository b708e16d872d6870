"""The API answers each request in one TCP segment (api/http_protocol.py), and HTTP still
behaves: keep-alive, pipelining, HEAD, `Connection: close`, a client that half-closes, large
and streamed answers."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.http_protocol import HOLD_AT, OneWriteProtocol
from tests.conftest import LiveServer, free_port
from tests.raw_http import Answers, connect, get, segments_for_answers

# TCP_INFO's data segment counts, and the kernel's socket buffer limits read below.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's TCP_INFO and /proc/sys/net")


def test_each_answer_reaches_the_client_in_one_tcp_segment(live_server: LiveServer) -> None:
    # uvicorn's own protocol sends the headers and the body as two segments: the client
    # would count 40 here, and wake twice for each answer.
    assert segments_for_answers(live_server.url, 20) == 20


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


def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(live_server: LiveServer) -> None:
    # `nc -N`, probes, scripts: the request, then shutdown(SHUT_WR). The end of file closes the
    # transport underneath the held answer unless the protocol sends it first.
    for _ in range(5):
        with connect(live_server.url) as sock:
            sock.sendall(get("/health"))
            sock.shutdown(socket.SHUT_WR)
            status, _, body = Answers(sock).next()
            assert status == 200 and body


def test_a_large_answer_arrives_whole(live_server: LiveServer) -> None:
    with connect(live_server.url) as sock:
        sock.sendall(get("/schema/openapi.json"))
        status, headers, body = Answers(sock).next()
        assert status == 200 and len(body) == int(headers["content-length"]) > HOLD_AT
        assert body.rstrip().endswith(b"}")


# A bare ASGI app for what the API has no route for: a streamed answer, slow or far larger
# than the socket's buffers.
CHUNK = b"x" * 200_000
# Three times what the kernel lets a sending socket buffer at most (the client's receive
# buffer is pinned to 16 KiB): the app must be stopped by flow control long before the end.
STREAM_CHUNKS = 3 * max(4 << 20, int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])) // len(CHUNK) + 1
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
    SENT_ALL.clear()
    with connect(streaming_server, receive_buffer=16_384) as sock:
        sock.sendall(get("/big"))
        # The client reads nothing yet: once the socket's buffers are full, uvicorn's flow
        # control must stop the app (writes held in memory instead would let it run to the end).
        assert not SENT_ALL.wait(1.0)
        status, _, body = Answers(sock).next()
        assert status == 200 and body == CHUNK * STREAM_CHUNKS and SENT_ALL.is_set()


def test_a_slow_stream_sends_each_part_when_it_is_written(streaming_server: str) -> None:
    FIRST_PART_READ.clear()
    with connect(streaming_server) as sock:
        sock.settimeout(5)
        sock.sendall(get("/slow"))
        answers = Answers(sock)
        while b"one " not in answers.buffer:
            answers._more()
        FIRST_PART_READ.set()
        status, _, body = answers.next()
        assert status == 200 and body == b"one two"
